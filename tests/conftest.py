from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_BOOKS = REPO.parent / "shared" / "data" / "gutenberg"

SAMPLE_TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness. Café, naïve, Ünïcödé — and 東京 too.\n"
)


@pytest.fixture
def shared_books() -> Path:
    if not SHARED_BOOKS.is_dir():
        pytest.skip(f"the shared Gutenberg books are not at {SHARED_BOOKS} (they are in CI, not in a user's clone)")
    return SHARED_BOOKS


@pytest.fixture
def text_dir(tmp_path: Path) -> Path:
    """A small corpus: two .txt files (one with Gutenberg markers, BOM and CRLF) and a file to ignore."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text(SAMPLE_TEXT * 40, encoding="utf-8")
    book = "\ufeffHeader\r\n*** START OF THE PROJECT GUTENBERG EBOOK TEST ***\r\n" + SAMPLE_TEXT * 40 + "*** END OF THE PROJECT GUTENBERG EBOOK TEST ***\r\nLicense\r\n"
    (folder / "b.txt").write_bytes(book.encode("utf-8"))
    (folder / "notes.md").write_text("not read")
    return folder


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own folder, so caches, checkpoints and logs never leak between tests."""
    monkeypatch.chdir(tmp_path)

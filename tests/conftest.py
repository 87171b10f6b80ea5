from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a ctt subprocess: this checkout first on PYTHONPATH, the caller's own entries after it."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}
# Short texts written for these tests, one per header and footer variant of real Gutenberg editions
# (byte-order mark, CRLF, wrapped markers, "End of Project Gutenberg's ..." lines); see their headers.
FIXTURE_BOOKS = REPO / "tests" / "fixtures" / "gutenberg"
# Optional: real editions (pgN-title.txt, e.g. the ten books of configs/gutenberg-gpu.yaml) in a folder
# beside the repository. Where it exists, the tests that take BOOK_FOLDERS check those books as well.
SHARED_BOOKS = REPO.parent / "shared" / "data" / "gutenberg"
BOOK_FOLDERS = {"test-books": FIXTURE_BOOKS} | ({"real-editions": SHARED_BOOKS} if SHARED_BOOKS.is_dir() else {})

SAMPLE_TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness. Café, naïve, Ünïcödé — and 東京 too.\n"
)


def books_by_id(folder: Path) -> dict[int, Path]:
    """The ``pgN*.txt`` files of a folder, by ebook id N."""
    return {int(re.match(r"pg(\d+)", path.name)[1]): path for path in sorted(folder.glob("pg*.txt"))}


@pytest.fixture
def tail_compresses_better(tmp_path: Path) -> Path:
    """A corpus whose last tenth of the characters is far fewer than a tenth of its BPE tokens: scattered CJK, then English."""
    folder = tmp_path / "uneven"
    folder.mkdir()
    (folder / "a.txt").write_text("".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(1500)), encoding="utf-8")
    (folder / "b.txt").write_text("the cat sat on the mat. " * 400, encoding="utf-8")
    return folder


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

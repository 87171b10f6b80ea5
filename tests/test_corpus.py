import re
from pathlib import Path

import pytest

from lightning_app.corpus import embedded_corpus, iter_documents, normalize, read_document, strip_gutenberg, text_files

from .conftest import BOOK_FOLDERS, FIXTURE_BOOKS

BOOK = """\ufeffThe Project Gutenberg eBook of Test\r
\r
*** START OF THE PROJECT GUTENBERG EBOOK TEST ***\r
\r
Chapter 1\r
Call me Ishmael.\r
\r
*** END OF THE PROJECT GUTENBERG EBOOK TEST ***\r
License text\r
"""


def test_normalize_drops_bom_and_crlf():
    assert normalize("\ufeffa\r\nb\rc") == "a\nb\nc"


def test_strip_between_markers():
    assert strip_gutenberg(BOOK) == "Chapter 1\nCall me Ishmael.\n"


def test_strip_wrapped_markers_and_end_line():
    book = (
        "Header\n*** START OF THIS PROJECT GUTENBERG EBOOK THE ADVENTURES OF SHERLOCK\nHOLMES ***\n\n"
        "Body text.\n\nEnd of Project Gutenberg's The Adventures, by Someone\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK THE ADVENTURES OF SHERLOCK\nHOLMES ***\nfooter\n"
    )
    assert strip_gutenberg(book) == "Body text.\n"


def test_strip_end_line_wrapped_onto_two_lines():
    book = (
        "*** START OF THIS PROJECT GUTENBERG EBOOK A LONG TITLE ***\n\nBody text.\n\n"
        "End of the Project Gutenberg EBook of A Long Title, by\nSomeone Else\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK A LONG TITLE ***\n"
    )
    assert strip_gutenberg(book) == "Body text.\n"


def test_every_book_of_a_joined_file_is_kept():
    second = BOOK.replace("TEST", "OTHER").replace("Call me Ishmael.", "It was the best of times.")
    assert strip_gutenberg(BOOK + second) == "Chapter 1\nCall me Ishmael.\n\nChapter 1\nIt was the best of times.\n"


def test_an_end_marker_alone_closes_the_text():
    assert strip_gutenberg("Body.\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nLicense\n") == "Body.\n"


def test_a_start_marker_without_its_closing_stars_does_not_swallow_the_book():
    book = "*** START OF THE PROJECT GUTENBERG EBOOK TEST\n\nChapter 1\n\n" + "Body. " * 50 + "\n*** END OF THE PROJECT GUTENBERG EBOOK TEST ***\n"
    assert "Chapter 1" in strip_gutenberg(book) and "Body." in strip_gutenberg(book)


def test_text_without_markers_is_kept_whole():
    assert strip_gutenberg("just text\r\n") == "just text\n"


def test_files_sorted_recursive_and_only_txt(text_dir: Path):
    (text_dir / "sub").mkdir()
    (text_dir / "sub" / "c.txt").write_text("more")
    assert [p.name for p in text_files(text_dir)] == ["a.txt", "b.txt", "c.txt"]


def test_hidden_files_and_folders_are_left_out(text_dir: Path):
    (text_dir / ".ipynb_checkpoints").mkdir()
    (text_dir / ".ipynb_checkpoints" / "a-checkpoint.txt").write_text("a copy")
    (text_dir / ".notes.txt").write_text("hidden")
    assert [p.name for p in text_files(text_dir)] == ["a.txt", "b.txt"]


def test_utf16_text_is_read(tmp_path: Path):
    (tmp_path / "notepad.txt").write_bytes("Caf\u00e9 au lait\r\n".encode("utf-16"))  # with its byte-order mark
    assert read_document(tmp_path / "notepad.txt") == "Caf\u00e9 au lait\n"


def test_read_document_cleans(text_dir: Path):
    text = read_document(text_dir / "b.txt")
    assert "\r" not in text and "\ufeff" not in text and "GUTENBERG" not in text


def test_embedded_corpus_is_english_text():
    text = embedded_corpus()
    assert len(text) > 300_000 and "the" in text


def test_iter_documents_defaults_to_embedded():
    [(name, text)] = list(iter_documents(None))
    assert "pydoc_data" in name and text == embedded_corpus()


def cleaned(path: Path) -> tuple[str, str]:
    """``(the normalized raw text between the markers, read_document(path))``, checked for what holds in
    every Gutenberg edition."""
    raw = normalize(path.read_bytes().decode("utf-8"))
    text = read_document(path)
    assert "\r" not in text and "\ufeff" not in text, path.name
    assert not re.search(r"\*\*\* ?(START|END) OF", text), path.name
    assert not text.rstrip().splitlines()[-1].lower().startswith("end of"), path.name
    # The text begins right after the START marker and ends before the END marker.
    start = re.search(r"\*\*\* ?START OF[^*]*\*\*\*", raw).end()
    end = re.search(r"\*\*\* ?END OF", raw).start()
    assert raw[start:].lstrip().startswith(text.lstrip()[:200]), path.name
    assert text.rstrip()[-200:] in raw[start:end], path.name
    return raw[start:end], text


# Each written-for-the-tests book: the first and the last line of its text proper.
FIXTURE_TEXT_BOUNDS = {
    "pg1-modern-edition.txt": ("THE LAMPLIGHTER’S LEDGER", "were burning."),
    "pg2-bom-crlf-end-of-gutenbergs.txt": ("NOTES ON FOLDING MAPS", "for two."),
    "pg3-wrapped-markers.txt": ("THE FERRYMAN OF LOW HARBOUR", "the better part of ten minutes."),
    "pg4-indented-end-marker-crlf.txt": ("A CLOCKMAKER'S APPRENTICE", "THE END"),
    "pg5-no-space-ebook-mixed-case.txt": ("LETTERS FROM A HILL FARM", "Tom"),
    "pg6-text-mentions-gutenberg.txt": ("Transcriber’s note:", "THE END"),
}


def test_every_fixture_book_is_checked():
    assert sorted(p.name for p in FIXTURE_BOOKS.glob("*.txt")) == sorted(FIXTURE_TEXT_BOUNDS)


@pytest.mark.parametrize("name", sorted(FIXTURE_TEXT_BOUNDS))
def test_header_and_footer_variants_are_cleaned(name: str):
    between_markers, text = cleaned(FIXTURE_BOOKS / name)
    first, last = FIXTURE_TEXT_BOUNDS[name]
    # All of the text and nothing else: no closing "End of ..." line, no blank lines around it.
    assert text == between_markers[between_markers.index(first) : between_markers.rindex(last) + len(last)] + "\n"


# Texts that mention Project Gutenberg, or end like a footer, with words of theirs that cleaning must keep.
KEEPS = {
    "pg6-text-mentions-gutenberg.txt": ["prepared for Project Gutenberg", "End of Part the First."],
    "pg2701-moby-dick.txt": ["Project Gutenberg’s archives"],  # its transcriber's note
    "pg11-alices-adventures-in-wonderland.txt": ["THE END"],  # just before "End of Project Gutenberg's ..."
}


@pytest.mark.parametrize("folder", BOOK_FOLDERS.values(), ids=BOOK_FOLDERS.keys())
def test_every_book_is_cleaned(folder: Path):
    for path in text_files(folder):
        _, text = cleaned(path)
        keeps = KEEPS.get(path.name, [])
        assert all(words in text for words in keeps), path.name
        assert "Project Gutenberg" not in text or any("Project Gutenberg" in words for words in keeps), path.name

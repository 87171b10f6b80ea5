from pathlib import Path

import pytest

from lightning_app.corpus import embedded_corpus, iter_documents, normalize, read_document, strip_gutenberg, text_files

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


def test_text_without_markers_is_kept_whole():
    assert strip_gutenberg("just text\r\n") == "just text\n"


def test_files_sorted_recursive_and_only_txt(text_dir: Path):
    (text_dir / "sub").mkdir()
    (text_dir / "sub" / "c.txt").write_text("more")
    assert [p.name for p in text_files(text_dir)] == ["a.txt", "b.txt", "c.txt"]


def test_read_document_cleans(text_dir: Path):
    text = read_document(text_dir / "b.txt")
    assert "\r" not in text and "\ufeff" not in text and "GUTENBERG" not in text


def test_embedded_corpus_is_english_text():
    text = embedded_corpus()
    assert len(text) > 300_000 and "the" in text


def test_iter_documents_defaults_to_embedded():
    [(name, text)] = list(iter_documents(None))
    assert "pydoc_data" in name and text == embedded_corpus()


def test_real_books_are_cleaned(shared_books: Path):
    for path in text_files(shared_books):
        raw = path.read_bytes().decode("utf-8").replace("\ufeff", "").replace("\r\n", "\n")
        text = read_document(path)
        assert "\r" not in text and "\ufeff" not in text, path.name
        assert "*** START" not in text and "*** END" not in text, path.name
        assert not text.rstrip().splitlines()[-1].lower().startswith("end of"), path.name
        # The text begins right after the START marker and ends right before the END marker.
        start = raw.index("***", raw.index("*** START") + 3) + 3
        assert raw[start:].lstrip().startswith(text.lstrip()[:200]), path.name
        assert "Project Gutenberg" not in text or path.name.startswith("pg2701"), path.name


def test_moby_dick_keeps_its_transcribers_note(shared_books: Path):
    text = read_document(shared_books / "pg2701-moby-dick.txt")
    assert "Project Gutenberg’s archives" in text


@pytest.mark.parametrize("name", ["pg11-alices-adventures-in-wonderland.txt"])
def test_end_of_project_gutenberg_line_goes(shared_books: Path, name: str):
    text = read_document(shared_books / name)
    assert text.rstrip().endswith("THE END") and "End of Project Gutenberg" not in text

"""Reading a text corpus: the ``.txt`` files of a folder, cleaned of Project Gutenberg boilerplate.

Cleaning drops a byte-order mark, turns CRLF (and lone CR) into LF, and keeps only the text
between Gutenberg's START and END markers when the file has them (each book's, when several books
were joined into one file); files without markers are kept whole. UTF-16 files (with their
byte-order mark, as Windows Notepad saves "Unicode") are read as such.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import UsageError, path_error

log = logging.getLogger(__name__)

# The marker lines wrap onto a second line in older editions: the closing *** may come one line later, no further.
START_MARKER = r"\*\*\* ?START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK"
_START = re.compile(rf"^{START_MARKER}[^*\n]*(?:\n[^*\n]*)?\*\*\*[^\n]*\n", re.M | re.I)
_END = re.compile(r"^[ \t]*\*\*\* ?END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK", re.M | re.I)
# Older editions close the text itself with "End of Project Gutenberg's <title>, by <author>"
# or "End of the Project Gutenberg EBook of <title>" just before the END marker; a long title wraps it onto a second line.
_END_LINE = re.compile(r"^End of (?:the )?Project Gutenberg[^\n]*(?:\n[^\n]+)?\Z", re.M | re.I)

EMBEDDED_CORPUS_NAME = "the embedded default corpus (Python's pydoc_data.topics)"


def normalize(text: str) -> str:
    """Drop byte-order marks and turn CRLF and lone CR line endings into LF."""
    return text.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n")


def strip_gutenberg(text: str) -> str:
    """Keep each book between Gutenberg's START and END markers, one after another (the whole text if it has none)."""
    text = normalize(text)
    books, rest = [], text
    # A START opens a book; an END without a START before it closes the first one.
    while (start := _START.search(rest)) or (not books and _END.search(rest)):
        body = rest[start.end() :] if start else rest
        end = _END.search(body)
        book = _END_LINE.sub("", body[: end.start()].rstrip()) if end else body
        books.append(book.lstrip("\n").rstrip())
        rest = body[end.end() :] if end else ""
    return "\n\n".join(books) + "\n" if books else text


def text_files(data_dir: Path) -> list[Path]:
    """Every ``.txt`` file under ``data_dir``, in a deterministic (sorted) order.

    Hidden files and folders are left out: editors' and notebooks' copies (``.ipynb_checkpoints``)
    would put the same text in both splits.
    """
    def hidden(path: Path) -> bool:
        return any(part.startswith(".") for part in path.relative_to(data_dir).parts)

    return sorted(p for p in data_dir.rglob("*.txt") if p.is_file() and not hidden(p))


def read_bytes(path: Path) -> bytes:
    """The bytes of a corpus file; one that cannot be read is a UsageError naming it."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise path_error(err, "The text file", path, "make it readable or move it out of data.data_dir") from err


def read_document(path: Path, warn: Callable[[str], None] = log.warning) -> str:
    """One cleaned document. Bytes that are not UTF-8 become U+FFFD, with a warning naming the file;
    a binary file (NUL bytes) is refused."""
    raw = read_bytes(path)
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with its byte-order mark: NUL bytes are expected
        return strip_gutenberg(raw.decode("utf-16", errors="replace"))
    if b"\x00" in raw[:65536]:
        raise UsageError(f"{path} looks binary (it holds NUL bytes), not text; remove it from data.data_dir.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        warn(f"{path} is not valid UTF-8 (byte {err.start}); invalid bytes are replaced by U+FFFD.")
        text = raw.decode("utf-8", errors="replace")
    return strip_gutenberg(text)


def embedded_corpus() -> str:
    """About 465 KB of English reference text that every Python install carries."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip() for key in sorted(topics)) + "\n"


def iter_documents(data_dir: Path | None, warn: Callable[[str], None] = log.warning) -> Iterator[tuple[str, str]]:
    """Yield ``(name, cleaned text)`` for each non-empty document; the embedded corpus if ``data_dir`` is None.

    ``warn`` receives a note about each file that is not clean UTF-8 text or holds no text at all.
    """
    if data_dir is None:
        yield EMBEDDED_CORPUS_NAME, embedded_corpus()
        return
    for path in text_files(data_dir):
        text = read_document(path, warn)
        if not text.strip():
            warn(f"Skipping {path}: it holds no text.")
            continue
        yield str(path), text

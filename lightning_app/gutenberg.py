"""Downloading Project Gutenberg books as plain text, safely and at most once.

Ebook ``N`` comes from ``{mirror}/cache/epub/N/pgN.txt`` and is saved as ``data_dir/pgN.txt``.
A book already on disk is never fetched again, so a filled ``data_dir`` works offline. Each
download streams into a hidden ``.part`` file beside its target and is renamed onto it only once
the body is complete and looks like a Gutenberg text; any failure raises ``DownloadError`` and
leaves the folder as it was.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from .corpus import START_MARKER

log = logging.getLogger(__name__)

# Pride and Prejudice, Frankenstein, Alice in Wonderland, Moby Dick, A Tale of Two Cities: about 3.4 MB.
DEFAULT_IDS: list[int] = [1342, 84, 11, 2701, 98]
DEFAULT_MIRROR = "https://www.gutenberg.org"

_HINT = "to train without downloading, point --data.data_dir at a folder of .txt files"
_START = re.compile(START_MARKER, re.I)
# Error, captcha and "not found" pages from a mirror or proxy; a book never opens like this.
_HTML = re.compile(r"<!doctype html|<html[\s>]", re.I)


class DownloadError(RuntimeError):
    """A book could not be downloaded; the message names it, says why and how to go on without it."""


class _Rejected(Exception):
    """The server answered, but not with the book; the message is the reason."""


def book_url(mirror: str, ebook_id: int) -> str:
    """Where a mirror keeps the plain-text (UTF-8) edition of an ebook."""
    return f"{mirror.rstrip('/')}/cache/epub/{ebook_id}/pg{ebook_id}.txt"


def book_path(data_dir: Path, ebook_id: int) -> Path:
    """Where a downloaded ebook is saved; the name comes from the id, never from the server."""
    return data_dir / f"pg{ebook_id}.txt"


def download_books(
    ids: list[int],
    data_dir: Path,
    mirror: str = DEFAULT_MIRROR,
    timeout: float = 30.0,
    retries: int = 4,
    backoff: float = 1.0,
    max_bytes: int = 20 * 2**20,
) -> list[Path]:
    """Make sure every ebook in ``ids`` is in ``data_dir``, downloading the missing ones; returns their paths.

    ``timeout`` bounds connecting and each wait for data (seconds). Connection errors, timeouts, 429 and
    5xx answers are retried up to ``retries`` times, with pauses doubling from ``backoff`` seconds
    (or as long as Retry-After asks).
    """
    parsed = urlparse(mirror)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise DownloadError(f"Cannot download Gutenberg books from {mirror!r}: it is not an http(s) URL; {_HINT}.")
    paths = [book_path(data_dir, ebook_id) for ebook_id in ids]
    missing = [(ebook_id, path) for ebook_id, path in zip(ids, paths) if not path.exists()]
    if not missing:
        return paths  # nothing to fetch, so no session and no network
    data_dir.mkdir(parents=True, exist_ok=True)
    with _session(retries, backoff) as session:
        for ebook_id, path in missing:
            url = book_url(mirror, ebook_id)
            size = _download(session, ebook_id, url, path, timeout, max_bytes)
            log.info("Downloaded ebook %d (%.0f KB) from %s", ebook_id, size / 1024, url)
    return paths


def _session(retries: int, backoff: float) -> requests.Session:
    """A session that retries connection errors, 429 and 5xx with exponential backoff, honouring Retry-After."""
    retry = Retry(
        total=retries,
        backoff_factor=backoff,
        status_forcelist={429, *range(500, 600)},
        respect_retry_after_header=True,
        raise_on_status=False,  # once retries run out, hand back the last answer so the error can quote its status
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _download(session: requests.Session, ebook_id: int, url: str, path: Path, timeout: float, max_bytes: int) -> int:
    """Fetch one book onto ``path``, all or nothing; returns its size in bytes."""
    fd, part = tempfile.mkstemp(dir=path.parent, prefix=f".pg{ebook_id}.", suffix=".part")
    part_path = Path(part)
    try:
        with os.fdopen(fd, "wb") as out:
            _stream(session, url, out, timeout, max_bytes)
        _check_book(part_path.read_bytes())
        os.chmod(part_path, 0o644)  # mkstemp makes the file private; a book is ordinary data
        os.replace(part_path, path)  # atomic: readers see the whole book or none
        return path.stat().st_size
    except _Rejected as err:
        raise _error(ebook_id, url, str(err)) from None
    except requests.RequestException as err:
        raise _error(ebook_id, url, _describe(err, timeout)) from err
    finally:
        part_path.unlink(missing_ok=True)


def _stream(session: requests.Session, url: str, out: BinaryIO, timeout: float, max_bytes: int) -> None:
    """Write the body of a 200 answer to ``out``, stopping past ``max_bytes`` and refusing a short body."""
    with session.get(url, stream=True, timeout=(timeout, timeout)) as response:
        if response.status_code != 200:
            raise _Rejected(f"the server answered HTTP {response.status_code} {response.reason}")
        header = response.headers.get("Content-Length", "")
        declared = int(header) if header.isdigit() else None
        if declared is not None and declared > max_bytes:
            raise _Rejected(f"it is {declared:,} bytes, more than max_bytes = {max_bytes:,}")
        received = 0
        for chunk in response.iter_content(chunk_size=2**16):
            received += len(chunk)
            if received > max_bytes:
                raise _Rejected(f"it is more than max_bytes = {max_bytes:,} bytes")
            out.write(chunk)
        # requests does not hold a plain (non-chunked) body to its Content-Length, so a connection
        # closed early would pass as a short book. tell() counts bytes on the wire, before any gzip decoding.
        if declared is not None and response.raw.tell() != declared:
            raise _Rejected(f"the connection closed after {response.raw.tell():,} of {declared:,} bytes")


def _check_book(body: bytes) -> None:
    """Refuse a body that is not the plain text of a Gutenberg book."""
    if not body:
        raise _Rejected("the server sent an empty body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Rejected(f"the body is not UTF-8 text (invalid byte at offset {err.start})") from None
    if "\x00" in text:
        raise _Rejected("the body is binary data, not text")
    if _HTML.search(text[:1024]):
        raise _Rejected("the server sent an HTML page, not the plain-text book")
    if not _START.search(text):
        raise _Rejected("the text has no '*** START OF THE PROJECT GUTENBERG EBOOK' marker")


def _describe(err: requests.RequestException, timeout: float) -> str:
    """One line on why a request failed, in the user's terms rather than urllib3's."""
    # After retries, requests wraps the last urllib3 error in a MaxRetryError (whose .reason it is).
    cause = err.args[0] if err.args else None
    cause = getattr(cause, "reason", cause)
    if isinstance(err, requests.ConnectTimeout):
        return f"could not connect within {timeout:g} s"
    if isinstance(err, requests.ReadTimeout) or isinstance(cause, ReadTimeoutError):
        return f"the server did not answer in time (nothing for {timeout:g} s)"
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off before the whole book arrived"
    if isinstance(err, requests.exceptions.SSLError):
        return f"the TLS connection failed ({cause})"
    if isinstance(err, requests.ConnectionError):
        return f"could not connect ({cause})"
    return f"{type(err).__name__}: {err}"


def _error(ebook_id: int, url: str, reason: str) -> DownloadError:
    return DownloadError(f"Could not download Project Gutenberg ebook {ebook_id} from {url}: {reason}; {_HINT}.")

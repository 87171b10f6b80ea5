"""Downloading Project Gutenberg books as plain text, safely and at most once.

Ebook ``N`` comes from ``{mirror}/cache/epub/N/pgN.txt`` and is saved as ``data_dir/pgN.txt``.
A book already on disk is never fetched again, so a filled ``data_dir`` works offline, and an id
given twice is fetched once. Each download streams into a hidden ``.part`` file beside its target
(see ``atomic_file``) and is renamed onto it only once the body is complete, arrived within the
per-book deadline and looks like a Gutenberg text; any failure raises ``DownloadError`` and leaves
the folder as it was. ``.part`` files that a killed run left behind are removed by the next one.
A password in the mirror URL is used for the requests but shown as ``***`` (see ``credentials``).
"""

from __future__ import annotations

import logging
import re
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError, SSLError
from urllib3.util.retry import Retry

from .atomic_file import remove_leftovers, write_atomically
from .corpus import START_MARKER
from .credentials import mask_credentials
from .errors import path_error

log = logging.getLogger(__name__)

# Pride and Prejudice, Frankenstein, Alice in Wonderland, Moby Dick, A Tale of Two Cities: about 3.4 MB.
DEFAULT_IDS: list[int] = [1342, 84, 11, 2701, 98]
DEFAULT_MIRROR = "https://www.gutenberg.org"

_HINT = "to train without downloading, point --data.data_dir at a folder of .txt files"
_AUTH_HINT = " (the mirror wants a user name and password: put them in ~/.netrc, or in the URL as user:password@)"
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
    deadline: float = 300.0,
    max_bytes: int = 20 * 2**20,
) -> list[Path]:
    """Make sure every ebook in ``ids`` is in ``data_dir``, downloading the missing ones; returns their paths.

    ``timeout`` bounds connecting and each wait for data (seconds); ``deadline`` bounds the whole
    download of one book, so a server that trickles data cannot hold the run (it is checked as the
    data arrives). Connection errors, timeouts, 429 and 5xx answers are retried up to ``retries``
    times, with pauses doubling from ``backoff`` seconds (or as long as Retry-After asks); a host
    name that does not resolve is not retried.
    """
    _check_mirror(mirror)
    ids = list(dict.fromkeys(ids))  # an id given twice is fetched once
    paths = [book_path(data_dir, ebook_id) for ebook_id in ids]
    # A .part untouched for longer than a download may take is no other run's download in progress.
    if data_dir.is_dir() and (leftovers := remove_leftovers(data_dir, "pg*", older_than=deadline)):
        log.info("Removed %d unfinished download(s) that an earlier run left in %s", len(leftovers), data_dir)
    missing = [(ebook_id, path) for ebook_id, path in zip(ids, paths) if not path.exists()]
    if not missing:
        return paths  # nothing to fetch, so no session and no network
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise path_error(err, "The download folder", data_dir, "choose another data.data_dir") from err
    log.info("Downloading %d of %d Project Gutenberg books into %s", len(missing), len(ids), data_dir)
    with _session(retries, backoff) as session:
        for n, (ebook_id, path) in enumerate(missing, 1):
            url = book_url(mirror, ebook_id)
            start = time.monotonic()
            size = _download(session, ebook_id, url, path, timeout, deadline, max_bytes)
            progress = f"{n} of {len(missing)}, {size / 1024:.0f} KB in {time.monotonic() - start:.1f} s"
            log.info("Downloaded ebook %d (%s) from %s", ebook_id, progress, mask_credentials(url))
    return paths


def _check_mirror(mirror: str) -> None:
    """Refuse a mirror that is not a well-formed http(s) URL, before any download."""
    try:
        parsed = urlparse(mirror)
        valid = parsed.scheme in ("http", "https") and bool(parsed.hostname)
        requests.Request("GET", book_url(mirror, 1)).prepare()  # refuses what requests cannot send, e.g. a bad port
    except (ValueError, requests.RequestException):
        valid = False
    if not valid:
        shown = mask_credentials(mirror)
        raise DownloadError(f"Cannot download Gutenberg books from {shown!r}: it is not an http(s) URL; {_HINT}.")


class _Retry(Retry):
    """urllib3's Retry, except that a host name that does not resolve fails at once: offline, or a
    misspelt mirror, waiting for the backoff would only delay the error."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> Retry:
        if _unresolved(error):
            raise MaxRetryError(_pool, url, error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _unresolved(error: object) -> bool:
    """Whether a urllib3 error is a failed name lookup (urllib3 raises it from a socket.gaierror)."""
    return isinstance(error, NewConnectionError) and isinstance(error.__context__, socket.gaierror)


def _session(retries: int, backoff: float) -> requests.Session:
    """A session that retries connection errors, 429 and 5xx with exponential backoff, honouring Retry-After."""
    retry = _Retry(
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


def _download(
    session: requests.Session, ebook_id: int, url: str, path: Path, timeout: float, deadline: float, max_bytes: int
) -> int:
    """Fetch one book onto ``path``, all or nothing; returns its size in bytes."""

    def fetch(out: BinaryIO) -> None:
        _stream(session, url, out, timeout, deadline, max_bytes)
        out.seek(0)
        _check_book(out.read())

    try:
        write_atomically(path, fetch)
    except _Rejected as err:
        raise _error(ebook_id, url, str(err)) from None
    except (requests.RequestException, HTTPError) as err:
        raise _error(ebook_id, url, _describe(err, timeout)) from err
    return path.stat().st_size


def _stream(
    session: requests.Session, url: str, out: BinaryIO, timeout: float, deadline: float, max_bytes: int
) -> None:
    """Write the body of a 200 answer to ``out``, stopping past ``max_bytes`` or ``deadline`` seconds
    and refusing a short body."""
    give_up = time.monotonic() + deadline
    with session.get(url, stream=True, timeout=(timeout, timeout)) as response:
        if response.status_code != 200:
            hint = _AUTH_HINT if response.status_code == 401 else ""
            raise _Rejected(f"the server answered HTTP {response.status_code} {response.reason}{hint}")
        header = response.headers.get("Content-Length", "")
        declared = int(header) if header.isdigit() else None
        if declared is not None and declared > max_bytes:
            raise _Rejected(f"it is {declared:,} bytes, more than the {max_bytes:,} allowed for one book")
        received = 0
        # read1 returns whatever has arrived (requests' iter_content waits for whole chunks), so a
        # trickle of bytes still comes back here to be timed.
        while chunk := response.raw.read1(2**16, decode_content=True):
            received += len(chunk)
            if received > max_bytes:
                raise _Rejected(f"it is more than the {max_bytes:,} bytes allowed for one book")
            out.write(chunk)
            if time.monotonic() > give_up:
                raise _Rejected(f"it did not arrive within the deadline of {deadline:g} s ({received:,} bytes came)")
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


def _describe(err: Exception, timeout: float) -> str:
    """One line on why a request failed, in the user's terms rather than urllib3's."""
    # requests wraps urllib3's errors, after retries in a MaxRetryError (whose .reason is the last one);
    # reading the body raises urllib3's own.
    cause = err.args[0] if isinstance(err, requests.RequestException) and err.args else err
    cause = getattr(cause, "reason", cause)
    if _unresolved(cause):
        return "could not resolve the server's name (is the network down, or the mirror misspelt?)"
    if isinstance(err, requests.ConnectTimeout):
        return f"could not connect within {timeout:g} s"
    if isinstance(err, requests.ReadTimeout) or isinstance(cause, ReadTimeoutError):
        return f"the server did not answer in time (nothing for {timeout:g} s)"
    if isinstance(err, ProtocolError):
        return "the connection broke off before the whole book arrived"
    if isinstance(err, requests.exceptions.SSLError) or isinstance(cause, SSLError):
        return f"the TLS connection failed ({cause})"
    if isinstance(err, requests.ConnectionError):
        return f"could not connect ({cause})"
    return f"{type(err).__name__}: {err}"


def _error(ebook_id: int, url: str, reason: str) -> DownloadError:
    message = f"Could not download Project Gutenberg ebook {ebook_id} from {url}: {reason}; {_HINT}."
    return DownloadError(mask_credentials(message))

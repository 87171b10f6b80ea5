"""The Gutenberg downloader against a local mirror that serves test books and injects faults.

The mirror serves the short books written for the tests (tests/fixtures/gutenberg); real editions
are downloaded too where they sit beside the repository (BOOK_FOLDERS in conftest).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import torch
from urllib3.response import HTTPResponse

from lightning_app.errors import UsageError
from lightning_app.gutenberg import DownloadError, book_path, book_url, download_books

from .conftest import BOOK_FOLDERS, FIXTURE_BOOKS, books_by_id

STALL_S = 0.3  # the client's timeout in the stall tests; the server holds its answer until teardown
USER, PASSWORD = "reader", "pa55-w0rd-XYZ"  # for the mirror that wants basic auth


class Mirror(ThreadingHTTPServer):
    """A Gutenberg mirror on 127.0.0.1 that counts requests and plays the faults queued for each ebook id."""

    daemon_threads = True

    def __init__(self, books: dict[int, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.books = books
        self.faults: dict[int, list[str]] = {}  # ebook id -> faults for its next requests, one per request
        self.auth: tuple[str, str] | None = None  # (user, password) that requests must carry, if set
        self.requests = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends every stall at teardown, so no handler outlives its test
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def next_fault(self, ebook_id: int | None) -> str | None:
        with self.lock:
            self.requests += 1
            queue = self.faults.get(ebook_id, []) if ebook_id is not None else []
            return queue.pop(0) if queue else None

    def authorized(self, header: str | None) -> bool:
        return self.auth is None or header == "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()

    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up mid-answer is what several tests are about, not a server error


class _Handler(BaseHTTPRequestHandler):
    server: Mirror

    def do_GET(self) -> None:
        match = re.fullmatch(r"/cache/epub/(\d+)/pg(\d+)\.txt", self.path)
        ebook_id = int(match[1]) if match and match[1] == match[2] else None
        fault = self.server.next_fault(ebook_id)
        book = self.server.books.get(ebook_id) if ebook_id is not None else None
        if not self.server.authorized(self.headers.get("Authorization")):
            self._reply(401, b"", {"WWW-Authenticate": 'Basic realm="books"'})
        elif book is None or fault == "404":
            self.send_error(404)
        elif fault in ("500", "503"):
            self._reply(int(fault), b"busy")
        elif fault == "429":
            self._reply(429, b"slow down", {"Retry-After": "1"})
        elif fault == "stall":
            self.server.release.wait()
        elif fault == "stall_body":
            self._reply(200, book[:1000], {"Content-Length": str(len(book))})
            self.server.release.wait()
        elif fault == "trickle":  # the whole book, one byte every 50 ms: each read is quick, the whole is not
            self._reply(200, b"", {"Content-Length": str(len(book))})
            for i in range(len(book)):
                self.wfile.write(book[i : i + 1])
                if self.server.release.wait(0.05):
                    break
        elif fault == "cut":  # promise the whole book, send half, hang up
            self._reply(200, book[: len(book) // 2], {"Content-Length": str(len(book))})
        elif fault == "no_length":  # the body ends where the connection does
            self._reply(200, book, {"Content-Length": None})
        elif fault == "html":
            self._reply(200, b"<!DOCTYPE html>\n<html><body>Are you a robot?</body></html>\n")
        elif fault == "empty":
            self._reply(200, b"")
        elif fault == "binary":
            self._reply(200, bytes(range(256)) * 64)
        elif fault == "nul":  # valid UTF-8, marker and all, but not text
            self._reply(200, b"*** START OF THE PROJECT GUTENBERG EBOOK X ***\n" + bytes(4096))
        elif fault == "no_marker":
            self._reply(200, b"Just some text, not a Gutenberg book.\n" * 100)
        else:
            self._reply(200, book)

    def _reply(self, status: int, body: bytes, headers: dict[str, str | None] | None = None) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body)), **(headers or {})}
        self.send_response(status)
        for name, value in headers.items():
            if value is not None:
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[Mirror]:
    """A mirror of the ``pgN*.txt`` books of ``folder``, running until the block ends."""
    server = Mirror({ebook_id: path.read_bytes() for ebook_id, path in books_by_id(folder).items()})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    with serve(FIXTURE_BOOKS) as server:
        yield server


def fetch(server: Mirror, data_dir: Path, ids: list[int], **kwargs) -> list[Path]:
    """download_books from ``server`` with a tiny backoff, so retries cost milliseconds."""
    return download_books(ids, data_dir, **{"mirror": server.url, "timeout": 5.0, "backoff": 0.01, **kwargs})


def with_password(url: str, password: str = PASSWORD) -> str:
    return url.replace("://", f"://{USER}:{password}@", 1)


def test_a_download_folder_that_cannot_be_made_is_an_error(tmp_path: Path):
    (tmp_path / "f").write_text("a file")
    with pytest.raises(UsageError, match=r"The download folder .*f/books cannot be used: .*; choose another data.data_dir"):
        download_books([1], tmp_path / "f" / "books", mirror="http://127.0.0.1:9")


def test_book_url_and_path():
    assert book_url("https://www.gutenberg.org/", 1342) == "https://www.gutenberg.org/cache/epub/1342/pg1342.txt"
    assert book_path(Path("data"), 84) == Path("data/pg84.txt")


@pytest.mark.parametrize("folder", BOOK_FOLDERS.values(), ids=BOOK_FOLDERS.keys())
def test_downloads_byte_identical_books_with_a_line_each(folder: Path, tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, logger="lightning_app.gutenberg")
    with serve(folder) as mirror:
        ids = sorted(mirror.books)
        paths = fetch(mirror, tmp_path / "data", ids)
    assert paths == [book_path(tmp_path / "data", i) for i in ids]
    for ebook_id, path in zip(ids, paths):
        assert path.read_bytes() == mirror.books[ebook_id]
    assert sorted(os.listdir(tmp_path / "data")) == sorted(p.name for p in paths)  # no .part left behind
    assert mirror.requests == len(ids)
    lines = caplog.messages
    assert lines[0] == f"Downloading {len(ids)} of {len(ids)} Project Gutenberg books into {tmp_path / 'data'}"
    for n, (ebook_id, line) in enumerate(zip(ids, lines[1:]), 1):
        kilobytes = f"{len(mirror.books[ebook_id]) / 1024:.0f} KB"
        assert re.fullmatch(rf"Downloaded ebook {ebook_id} \({n} of {len(ids)}, {kilobytes} in \d+\.\d s\) from .*", line)
        assert line.endswith(book_url(mirror.url, ebook_id))
    assert len(lines) == 1 + len(ids)


def test_second_run_makes_no_requests(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fetch(mirror, tmp_path, [1, 2])
    stamps = [p.stat().st_mtime_ns for p in tmp_path.iterdir()]
    monkeypatch.setattr(requests, "Session", None)  # any attempt to open a session would now fail
    assert fetch(mirror, tmp_path, [2, 1]) == [tmp_path / "pg2.txt", tmp_path / "pg1.txt"]
    assert download_books([1], tmp_path, mirror="http://127.0.0.1:9") == [tmp_path / "pg1.txt"]  # offline
    assert mirror.requests == 2
    assert [p.stat().st_mtime_ns for p in tmp_path.iterdir()] == stamps


def test_an_id_given_twice_is_downloaded_once(mirror: Mirror, tmp_path: Path):
    assert fetch(mirror, tmp_path, [2, 1, 2, 2]) == [tmp_path / "pg2.txt", tmp_path / "pg1.txt"]
    assert mirror.requests == 2


def test_unfinished_downloads_of_a_killed_run_are_removed(mirror: Mirror, tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, logger="lightning_app.gutenberg")
    fetch(mirror, tmp_path, [1])
    # What a run killed mid-download leaves: a hidden .part beside the book (older versions named it .pgN.RANDOM.part).
    leftovers = [tmp_path / ".pg2.txt.1a2b3c4d.part", tmp_path / ".pg3.x7k2m9q1.part"]
    for path in leftovers:
        path.write_bytes(b"half a book")
        os.utime(path, (time.time() - 3600, time.time() - 3600))  # untouched for an hour, past any download's deadline
    in_progress = tmp_path / ".pg4.txt.5e6f7a8b.part"  # another run's download, written to just now
    in_progress.write_bytes(b"a quarter of a book")
    mine = tmp_path / ".notes.part"
    mine.write_text("not a download")
    fetch(mirror, tmp_path, [1])  # nothing to download: the leftovers still go
    assert sorted(os.listdir(tmp_path)) == [".notes.part", ".pg4.txt.5e6f7a8b.part", "pg1.txt"]
    assert f"Removed 2 unfinished download(s) that an earlier run left in {tmp_path}" in caplog.messages
    assert mirror.requests == 1


def test_retries_5xx_then_succeeds(mirror: Mirror, tmp_path: Path):
    mirror.faults[1] = ["500", "503"]
    (path,) = fetch(mirror, tmp_path, [1])
    assert path.read_bytes() == mirror.books[1]
    assert mirror.requests == 3


def test_honours_retry_after(mirror: Mirror, tmp_path: Path):
    mirror.faults[2] = ["429"]  # with Retry-After: 1, far longer than the 0.01 s backoff
    start = time.monotonic()
    (path,) = fetch(mirror, tmp_path, [2])
    assert time.monotonic() - start >= 0.9
    assert path.read_bytes() == mirror.books[2]


def test_body_without_content_length(mirror: Mirror, tmp_path: Path):
    mirror.faults[1] = ["no_length"]
    (path,) = fetch(mirror, tmp_path, [1])
    assert path.read_bytes() == mirror.books[1]


@pytest.mark.parametrize(
    ("faults", "kwargs", "reason", "n_requests"),
    [
        (["404"], {}, "HTTP 404 Not Found", 1),
        (["503"] * 3, {"retries": 2}, "HTTP 503", 3),
        (["stall"], {"timeout": STALL_S, "retries": 0}, "did not answer in time", 1),
        (["stall_body"], {"timeout": STALL_S, "retries": 0}, "did not answer in time", 1),
        (["trickle"], {"deadline": 0.3}, "did not arrive within the deadline of 0.3 s", 1),
        (["cut"], {}, "broke off before the whole book arrived", 1),
        (["html"], {}, "HTML page", 1),
        (["empty"], {}, "empty body", 1),
        (["binary"], {}, "not UTF-8 text", 1),
        (["nul"], {}, "binary data, not text", 1),
        (["no_marker"], {}, "no '*** START OF THE PROJECT GUTENBERG EBOOK' marker", 1),
        ([], {"max_bytes": 1000}, "{size:,} bytes, more than the 1,000 allowed for one book", 1),
        (["no_length"], {"max_bytes": 1000}, "more than the 1,000 bytes allowed for one book", 1),
    ],
    ids=["404", "503-exhausted", "stall", "stall-mid-body", "trickle-past-deadline", "cut-short", "html", "empty",
         "binary", "nul-bytes", "no-marker", "too-large", "too-large-streamed"],
)
def test_failure_is_clear_and_leaves_folder_untouched(
    mirror: Mirror, tmp_path: Path, faults: list[str], kwargs: dict, reason: str, n_requests: int
):
    mine = tmp_path / "pg2.txt"
    mine.write_text("My own edition; a failing run must not touch it.\n")
    before = mine.stat().st_mtime_ns
    mirror.faults[1] = faults
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch(mirror, tmp_path, [2, 1], **kwargs)
    message = str(info.value)
    assert f"ebook 1 from {book_url(mirror.url, 1)}: " in message
    assert reason.format(size=len(mirror.books[1])) in message
    assert message.endswith("point --data.data_dir at a folder of .txt files.") and "\n" not in message
    assert os.listdir(tmp_path) == ["pg2.txt"]  # no pg1.txt, no .part
    assert mine.read_text() == "My own edition; a failing run must not touch it.\n"
    assert mine.stat().st_mtime_ns == before
    assert mirror.requests == n_requests
    assert time.monotonic() - start < 3  # a slow server costs the deadline or the timeout, not the whole book


def test_short_body_rejected_even_if_urllib3_does_not_check(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # urllib3 < 2 does not hold the body to its Content-Length; the downloader must catch that itself.
    init = HTTPResponse.__init__

    def lenient_init(self, *args, **kwargs) -> None:
        init(self, *args, **{**kwargs, "enforce_content_length": False})

    monkeypatch.setattr(HTTPResponse, "__init__", lenient_init)
    mirror.faults[1] = ["cut"]
    size = len(mirror.books[1])
    with pytest.raises(DownloadError, match=rf"ebook 1 .* the connection closed after {size // 2:,} of {size:,} bytes"):
        fetch(mirror, tmp_path, [1])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "bad_mirror",
    ["ftp://127.0.0.1/", "file:///srv/gutenberg", "www.gutenberg.org", "", "http://", "http://127.0.0.1:http/",
     f"ftp://{USER}:{PASSWORD}@127.0.0.1/", f"http://{USER}:{PASSWORD}@127.0.0.1:port/"],
)  # fmt: skip
def test_rejects_non_http_mirror(tmp_path: Path, bad_mirror: str):
    with pytest.raises(DownloadError, match=r"is not an http\(s\) URL; .*--data\.data_dir") as info:
        download_books([84], tmp_path / "data", mirror=bad_mirror)
    assert PASSWORD not in str(info.value) and (USER not in bad_mirror or f"{USER}:***@" in str(info.value))
    assert not (tmp_path / "data").exists()


def test_a_name_that_does_not_resolve_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    lookups = []

    def offline(host: str, *args: object, **kwargs: object) -> None:
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="could not resolve the server's name"):
        download_books([1], tmp_path, mirror="https://mirror.example.invalid")  # default retries and backoff
    assert lookups == ["mirror.example.invalid"] and time.monotonic() - start < 1


def test_inline_credentials_are_sent_but_never_shown(mirror: Mirror, tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, logger="lightning_app.gutenberg")
    mirror.auth = (USER, PASSWORD)
    (path,) = fetch(mirror, tmp_path, [1], mirror=with_password(mirror.url))
    assert path.read_bytes() == mirror.books[1]
    assert caplog.messages[-1].endswith(f"from {with_password(book_url(mirror.url, 1), '***')}")
    assert PASSWORD not in caplog.text


def test_credentials_from_netrc(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    mirror.auth = (USER, PASSWORD)
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))  # requests reads ~/.netrc, or the file this names
    (path,) = fetch(mirror, tmp_path / "data", [1])
    assert path.read_bytes() == mirror.books[1]


@pytest.mark.parametrize("password", [PASSWORD + "-wrong", None], ids=["wrong-password", "no-credentials"])
def test_refused_credentials_are_one_masked_line(mirror: Mirror, tmp_path: Path, password: str | None):
    mirror.auth = (USER, PASSWORD)
    url = mirror.url if password is None else with_password(mirror.url, password)
    with pytest.raises(DownloadError) as info:
        fetch(mirror, tmp_path, [1], mirror=url)
    message = str(info.value)
    assert "HTTP 401 Unauthorized (the mirror wants a user name and password: put them in ~/.netrc" in message
    assert PASSWORD not in message and (password is None or f"{USER}:***@127.0.0.1" in message)
    assert os.listdir(tmp_path) == []


def test_fit_downloads_then_trains_and_never_saves_the_password(mirror: Mirror, tmp_path: Path, capsys, caplog):
    from lightning_app.cli import main

    caplog.set_level(logging.INFO)
    mirror.auth = (USER, PASSWORD)
    main([
        "fit", "--data.download_gutenberg=true", f"--data.data_dir={tmp_path / 'books'}", "--data.gutenberg_ids=[1, 3]",
        f"--data.gutenberg_mirror={with_password(mirror.url)}", "--data.context_len=32", "--model.dim=32",
        "--model.depth=1", "--model.heads=2", "--trainer.max_steps=3", "--trainer.limit_val_batches=2",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--sample.length=20",
    ])  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "books").iterdir()) == ["pg1.txt", "pg3.txt"]
    out, err = capsys.readouterr()
    assert mirror.requests == 2 and "--- sample" in out
    masked = with_password(mirror.url, "***")
    assert "Downloaded ebook 3 (2 of 2, " in caplog.text and masked in caplog.text
    # Nothing the run showed or wrote holds the password: log, console, config.yaml, hparams.yaml, checkpoints, caches.
    assert PASSWORD not in caplog.text + out + err
    written = [path for path in Path().rglob("*") if path.is_file()]
    assert not [path for path in written if PASSWORD.encode() in path.read_bytes()]
    for name in ("config.yaml", "hparams.yaml"):
        (saved,) = [path for path in written if path.name == name]
        assert masked in saved.read_text(), name
    checkpoint = torch.load("checkpoints/model.ckpt", weights_only=True)
    assert checkpoint["datamodule_hyper_parameters"]["gutenberg_mirror"] == masked


def test_fit_with_an_unreachable_mirror_is_one_clear_line(tmp_path: Path, capsys):
    from lightning_app.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([
            "fit", "--data.download_gutenberg=true", f"--data.data_dir={tmp_path / 'books'}",
            f"--data.gutenberg_mirror={with_password('http://127.0.0.1:9')}", "--data.gutenberg_retries=0",
        ])  # fmt: skip
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: Could not download Project Gutenberg ebook") and "--data.data_dir" in last
    assert f"from http://{USER}:***@127.0.0.1:9/cache/epub/" in last and PASSWORD not in err


@pytest.mark.parametrize(
    ("arg", "key"),
    [("--data.gutenberg_ids=[84, 0]", "data.gutenberg_ids"), ("--data.gutenberg_ids=[-3]", "data.gutenberg_ids"),
     ("--data.gutenberg_retries=-1", "data.gutenberg_retries"),
     ("--data.gutenberg_deadline=0", "data.gutenberg_deadline")],
)  # fmt: skip
def test_invalid_download_settings_are_refused_when_parsed(capsys, arg: str, key: str):
    from lightning_app.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--data.download_gutenberg=true", arg])
    assert exit_.value.code == 2
    assert f'Parser key "{key}"' in capsys.readouterr().err
    assert not Path("data").exists()  # refused before anything was downloaded

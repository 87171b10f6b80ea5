"""The Gutenberg downloader against a local mirror that serves the shared books and injects faults."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from urllib3.response import HTTPResponse

from lightning_app.gutenberg import DEFAULT_IDS, DownloadError, book_path, book_url, download_books

STALL_S = 0.3  # the client's timeout in the stall tests; the server holds its answer until teardown


class Mirror(ThreadingHTTPServer):
    """A Gutenberg mirror on 127.0.0.1 that counts requests and plays the faults queued for each ebook id."""

    daemon_threads = True

    def __init__(self, books: dict[int, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.books = books
        self.faults: dict[int, list[str]] = {}  # ebook id -> faults for its next requests, one per request
        self.requests = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends every stall at teardown, so no handler outlives its test
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def next_fault(self, ebook_id: int | None) -> str | None:
        with self.lock:
            self.requests += 1
            queue = self.faults.get(ebook_id, []) if ebook_id is not None else []
            return queue.pop(0) if queue else None

    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up mid-answer is what several tests are about, not a server error


class _Handler(BaseHTTPRequestHandler):
    server: Mirror

    def do_GET(self) -> None:
        match = re.fullmatch(r"/cache/epub/(\d+)/pg(\d+)\.txt", self.path)
        ebook_id = int(match[1]) if match and match[1] == match[2] else None
        fault = self.server.next_fault(ebook_id)
        book = self.server.books.get(ebook_id) if ebook_id is not None else None
        if book is None or fault == "404":
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


@pytest.fixture
def mirror(shared_books: Path) -> Iterator[Mirror]:
    books = {int(re.match(r"pg(\d+)-", p.name)[1]): p.read_bytes() for p in shared_books.glob("pg*-*.txt")}
    server = Mirror(books)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def fetch(mirror: Mirror, data_dir: Path, ids: list[int], **kwargs) -> list[Path]:
    """download_books with a tiny backoff, so retries cost milliseconds."""
    return download_books(ids, data_dir, **{"mirror": mirror.url, "timeout": 5.0, "backoff": 0.01, **kwargs})


def test_book_url_and_path():
    assert book_url("https://www.gutenberg.org/", 1342) == "https://www.gutenberg.org/cache/epub/1342/pg1342.txt"
    assert book_path(Path("data"), 84) == Path("data/pg84.txt")


def test_downloads_byte_identical_books(mirror: Mirror, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="lightning_app.gutenberg")
    paths = fetch(mirror, tmp_path / "data", DEFAULT_IDS)
    assert paths == [book_path(tmp_path / "data", i) for i in DEFAULT_IDS]
    for ebook_id, path in zip(DEFAULT_IDS, paths):
        assert path.read_bytes() == mirror.books[ebook_id]
    assert sorted(os.listdir(tmp_path / "data")) == sorted(p.name for p in paths)  # no .part left behind
    assert mirror.requests == len(DEFAULT_IDS)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == len(DEFAULT_IDS)
    assert f"Downloaded ebook 1342 (740 KB) from {book_url(mirror.url, 1342)}" in lines


def test_second_run_makes_no_requests(mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fetch(mirror, tmp_path, [11, 84])
    stamps = [p.stat().st_mtime_ns for p in tmp_path.iterdir()]
    monkeypatch.setattr(requests, "Session", None)  # any attempt to open a session would now fail
    assert fetch(mirror, tmp_path, [84, 11]) == [tmp_path / "pg84.txt", tmp_path / "pg11.txt"]
    assert download_books([11], tmp_path, mirror="http://127.0.0.1:9") == [tmp_path / "pg11.txt"]  # offline
    assert mirror.requests == 2
    assert [p.stat().st_mtime_ns for p in tmp_path.iterdir()] == stamps


def test_retries_5xx_then_succeeds(mirror: Mirror, tmp_path: Path):
    mirror.faults[84] = ["500", "503"]
    (path,) = fetch(mirror, tmp_path, [84])
    assert path.read_bytes() == mirror.books[84]
    assert mirror.requests == 3


def test_honours_retry_after(mirror: Mirror, tmp_path: Path):
    mirror.faults[11] = ["429"]  # with Retry-After: 1, far longer than the 0.01 s backoff
    start = time.monotonic()
    (path,) = fetch(mirror, tmp_path, [11])
    assert time.monotonic() - start >= 0.9
    assert path.read_bytes() == mirror.books[11]


def test_body_without_content_length(mirror: Mirror, tmp_path: Path):
    mirror.faults[84] = ["no_length"]
    (path,) = fetch(mirror, tmp_path, [84])
    assert path.read_bytes() == mirror.books[84]


@pytest.mark.parametrize(
    ("faults", "kwargs", "reason", "n_requests"),
    [
        (["404"], {}, "HTTP 404 Not Found", 1),
        (["503"] * 3, {"retries": 2}, "HTTP 503", 3),
        (["stall"], {"timeout": STALL_S, "retries": 0}, "did not answer in time", 1),
        (["stall_body"], {"timeout": STALL_S, "retries": 0}, "did not answer in time", 1),
        (["cut"], {}, "broke off before the whole book arrived", 1),
        (["html"], {}, "HTML page", 1),
        (["empty"], {}, "empty body", 1),
        (["binary"], {}, "not UTF-8 text", 1),
        (["nul"], {}, "binary data, not text", 1),
        (["no_marker"], {}, "no '*** START OF THE PROJECT GUTENBERG EBOOK' marker", 1),
        ([], {"max_bytes": 10_000}, "441,143 bytes, more than max_bytes = 10,000", 1),
        (["no_length"], {"max_bytes": 10_000}, "more than max_bytes = 10,000 bytes", 1),
    ],
    ids=["404", "503-exhausted", "stall", "stall-mid-body", "cut-short", "html", "empty", "binary", "nul-bytes", "no-marker",
         "too-large", "too-large-streamed"],
)
def test_failure_is_clear_and_leaves_folder_untouched(
    mirror: Mirror, tmp_path: Path, faults: list[str], kwargs: dict, reason: str, n_requests: int
):
    mine = tmp_path / "pg11.txt"
    mine.write_text("My own edition; a failing run must not touch it.\n")
    before = mine.stat().st_mtime_ns
    mirror.faults[84] = faults
    with pytest.raises(DownloadError) as info:
        fetch(mirror, tmp_path, [11, 84], **kwargs)
    message = str(info.value)
    assert f"ebook 84 from {book_url(mirror.url, 84)}: " in message and reason in message
    assert message.endswith("point --data.data_dir at a folder of .txt files.") and "\n" not in message
    assert os.listdir(tmp_path) == ["pg11.txt"]  # no pg84.txt, no .part
    assert mine.read_text() == "My own edition; a failing run must not touch it.\n"
    assert mine.stat().st_mtime_ns == before
    assert mirror.requests == n_requests


def test_short_body_rejected_even_if_urllib3_does_not_check(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # urllib3 < 2 does not hold the body to its Content-Length; the downloader must catch that itself.
    init = HTTPResponse.__init__

    def lenient_init(self, *args, **kwargs) -> None:
        init(self, *args, **{**kwargs, "enforce_content_length": False})

    monkeypatch.setattr(HTTPResponse, "__init__", lenient_init)
    mirror.faults[84] = ["cut"]
    with pytest.raises(DownloadError, match=r"ebook 84 .* the connection closed after 220,571 of 441,143 bytes"):
        fetch(mirror, tmp_path, [84])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad_mirror", ["ftp://127.0.0.1/", "file:///srv/gutenberg", "www.gutenberg.org", ""])
def test_rejects_non_http_mirror(tmp_path: Path, bad_mirror: str):
    with pytest.raises(DownloadError, match=r"is not an http\(s\) URL; .*--data\.data_dir"):
        download_books([84], tmp_path / "data", mirror=bad_mirror)
    assert not (tmp_path / "data").exists()


def test_fit_downloads_then_trains(mirror: Mirror, tmp_path: Path, capsys):
    from lightning_app.cli import main

    main([
        "fit", "--data.download_gutenberg=true", f"--data.data_dir={tmp_path / 'books'}", "--data.gutenberg_ids=[11, 35]",
        f"--data.gutenberg_mirror={mirror.url}", "--data.context_len=32", "--model.dim=32", "--model.depth=1",
        "--model.heads=2", "--trainer.max_steps=3", "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--sample.length=20",
    ])  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "books").iterdir()) == ["pg11.txt", "pg35.txt"]
    assert mirror.requests == 2 and "--- sample" in capsys.readouterr().out
    assert Path("checkpoints/model.ckpt").is_file()


def test_fit_with_an_unreachable_mirror_is_one_clear_line(tmp_path: Path, capsys):
    from lightning_app.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--data.download_gutenberg=true", f"--data.data_dir={tmp_path / 'books'}", "--data.gutenberg_mirror=http://127.0.0.1:9"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: Could not download Project Gutenberg ebook") and "--data.data_dir" in err

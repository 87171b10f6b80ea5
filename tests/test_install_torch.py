"""scripts/install_torch.py: which PyTorch build `make` installs, decided without installing anything."""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("install_torch", REPO / "scripts" / "install_torch.py")
install_torch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(install_torch)

WHEELS = ["torch-2.14.1-py3-none-any.whl", "torch-2.13.0+cpu-py3-none-any.whl", "torch-2.13.0-py3-none-any.whl"]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def wheel_index(tmp_path: Path) -> Iterator[str]:
    """A package index on 127.0.0.1 whose torch page lists WHEELS (pip only reads the list here)."""
    (tmp_path / "index" / "torch").mkdir(parents=True)
    links = "".join(f'<a href="{name}">{name}</a>\n' for name in WHEELS)
    (tmp_path / "index" / "torch" / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    handler = functools.partial(_QuietHandler, directory=str(tmp_path / "index"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install_torch, "has_nvidia_gpu", lambda: False)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


def test_gpu_is_found_by_nvidia_smi(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(install_torch.shutil, "which", {"nvidia-smi": "/usr/bin/nvidia-smi"}.get)
    assert install_torch.has_nvidia_gpu()
    monkeypatch.setattr(install_torch.shutil, "which", lambda name: None)
    assert install_torch.has_nvidia_gpu() == Path("/dev/nvidia0").exists()


def test_with_gpu_pip_keeps_its_defaults_and_no_index_is_asked(monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setattr(install_torch, "has_nvidia_gpu", lambda: True)
    monkeypatch.setattr(install_torch, "answers", pytest.fail)
    assert install_torch.pip_install_command("torch")[-1] == "torch"
    assert "CUDA build" in capsys.readouterr().err


def test_without_gpu_torch_comes_from_the_cpu_index(no_gpu, wheel_index: str, monkeypatch, capsys):
    monkeypatch.setattr(install_torch, "visible_versions", pytest.fail)
    command = install_torch.pip_install_command("torch==2.13.0", wheel_index)
    assert command[-3:] == ["torch==2.13.0", "--index-url", wheel_index]
    assert "CPU build" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "installed"),
    [("torch", "torch==2.13.0+cpu"), ("torch == 2.12.0", "torch==2.12.0+cpu"), ("torch==2.14.1", "torch==2.14.1"),
     ("torch>=2.6", "torch>=2.6")],
)  # fmt: skip
def test_offline_a_cpu_build_that_pip_sees_is_taken(no_gpu, monkeypatch, capsys, spec: str, installed: str):
    monkeypatch.setattr(install_torch, "visible_versions", lambda: ["2.14.1", "2.13.0+cpu", "2.13.0", "2.12.0+cpu"])
    url = closed_port_url()
    command = install_torch.pip_install_command(spec, url)
    assert command[-1] == installed and "--index-url" not in command
    err = capsys.readouterr().err
    assert f"{url} does not answer" in err and ("sees no CPU build" in err) == (installed == spec)


def test_visible_versions_are_pips(wheel_index: str, monkeypatch: pytest.MonkeyPatch):
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no configured mirrors: only the index below
    monkeypatch.setenv("PIP_INDEX_URL", wheel_index)
    assert install_torch.visible_versions() == ["2.14.1", "2.13.0+cpu", "2.13.0"]

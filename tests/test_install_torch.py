"""scripts/install_torch.py: which PyTorch build `make` installs, decided without running pip."""

from __future__ import annotations

import importlib.util
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


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def wheel_index(tmp_path: Path) -> Iterator[str]:
    """A package index on 127.0.0.1 (an empty folder listing is enough to answer)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/"


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(install_torch, "has_nvidia_gpu", lambda: False)


def test_gpu_is_found_by_nvidia_smi(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(install_torch.shutil, "which", {"nvidia-smi": "/usr/bin/nvidia-smi"}.get)
    assert install_torch.has_nvidia_gpu()
    monkeypatch.setattr(install_torch.shutil, "which", lambda name: None)
    assert install_torch.has_nvidia_gpu() == Path("/dev/nvidia0").exists()


def test_without_gpu_torch_comes_from_the_cpu_index(no_gpu, wheel_index: str, capsys):
    command = install_torch.pip_install_command("torch==2.13.0", wheel_index)
    assert command[-3:] == ["torch==2.13.0", "--index-url", wheel_index]
    assert "CPU build" in capsys.readouterr().err


def test_without_gpu_and_without_the_cpu_index_pip_keeps_its_configuration(no_gpu, capsys):
    url = closed_port_url()
    command = install_torch.pip_install_command("torch==2.13.0", url)
    assert "--index-url" not in command and command[-1] == "torch==2.13.0"
    assert f"{url} does not answer" in capsys.readouterr().err


def test_with_gpu_pip_defaults_are_kept_and_no_index_is_asked(monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setattr(install_torch, "has_nvidia_gpu", lambda: True)
    monkeypatch.setattr(install_torch, "answers", pytest.fail)
    command = install_torch.pip_install_command("torch")
    assert command[-1] == "torch" and "--index-url" not in command
    assert "CUDA build" in capsys.readouterr().err

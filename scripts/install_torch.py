"""Install PyTorch into the Python that runs this script: the CPU build where there is no NVIDIA GPU.

    python scripts/install_torch.py [SPEC]      (SPEC defaults to "torch"; e.g. "torch==2.13.0")

On Linux, pip's default index holds only CUDA builds of torch (several GB); the CPU builds live on
PyTorch's own wheel index. So on a machine without an NVIDIA GPU that index is used for torch and its
dependencies, when it answers. When it does not (offline, behind a local package mirror), pip keeps
its own configuration: otherwise it would retry the unreachable host for every package (over a minute).
On a machine with an NVIDIA GPU, pip's default gives the CUDA build.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is installed: its command-line tool or its first device file exists."""
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()


def answers(url: str, timeout: float = 10.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except OSError:  # URLError, HTTPError, time-outs and refused connections are all OSErrors
        return False


def pip_install_command(spec: str, cpu_index: str = CPU_INDEX) -> list[str]:
    """The pip command for this machine, and a note on standard error about which build it takes."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", spec]
    if has_nvidia_gpu():
        print(f"NVIDIA GPU found: installing {spec} with pip's defaults (a CUDA build on Linux).", file=sys.stderr)
    elif answers(cpu_index):
        print(f"No NVIDIA GPU found: installing the CPU build of {spec} from {cpu_index}.", file=sys.stderr)
        command += ["--index-url", cpu_index]
    else:
        print(f"No NVIDIA GPU found, but {cpu_index} does not answer: installing {spec} as pip is configured"
              " (from pip's default index on Linux, that is a CUDA build).", file=sys.stderr)  # fmt: skip
    return command


if __name__ == "__main__":
    subprocess.run(pip_install_command(sys.argv[1] if len(sys.argv) > 1 else "torch"), check=True)

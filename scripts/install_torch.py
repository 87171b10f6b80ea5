"""Install PyTorch into the Python that runs this script: the CPU build where there is no NVIDIA GPU.

    python scripts/install_torch.py [SPEC]      (SPEC defaults to "torch"; e.g. "torch==2.13.0")

On Linux, pip's default index holds only CUDA builds of torch (several GB); the CPU builds live on
PyTorch's own wheel index. So on a machine without an NVIDIA GPU that index is used, when it answers.
When it does not (offline, behind a local package mirror), this script looks for a CPU build among the
versions that pip sees as configured (e.g. a `+cpu` wheel in a local wheel folder) and otherwise leaves
the choice to pip; it does not hand pip the unreachable index, which pip would retry for every package.
On a machine with an NVIDIA GPU, pip's default gives the CUDA build.
"""

from __future__ import annotations

import re
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


def visible_versions() -> list[str]:
    """The versions of torch that pip can see as it is configured, newest first."""
    run = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "torch"], capture_output=True, text=True)
    found = re.search(r"^Available versions: (.+)$", run.stdout, re.M)
    return found[1].split(", ") if found else []


def local_cpu_spec(spec: str) -> str | None:
    """`torch==V+cpu` for the newest CPU build pip sees that `spec` (`torch` or `torch==V`) allows, if any."""
    wanted = re.fullmatch(r"torch(?:==(\S+))?", spec.replace(" ", ""))
    if wanted is None:
        return None
    builds = [v for v in visible_versions() if v.endswith("+cpu") and wanted[1] in (None, v.removesuffix("+cpu"))]
    return f"torch=={builds[0]}" if builds else None


def pip_install_command(spec: str, cpu_index: str = CPU_INDEX) -> list[str]:
    """The pip command for this machine, and a note on standard error about which build it takes."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    if has_nvidia_gpu():
        print(f"NVIDIA GPU found: installing {spec} with pip's defaults (a CUDA build on Linux).", file=sys.stderr)
        return [*pip, spec]
    if answers(cpu_index):
        print(f"No NVIDIA GPU found: installing the CPU build of {spec} from {cpu_index}.", file=sys.stderr)
        return [*pip, spec, "--index-url", cpu_index]
    local = local_cpu_spec(spec)
    if local:
        print(f"No NVIDIA GPU found and {cpu_index} does not answer: installing {local}, a CPU build pip finds.",
              file=sys.stderr)  # fmt: skip
        return [*pip, local]
    print(f"No NVIDIA GPU found, but {cpu_index} does not answer and pip sees no CPU build: installing {spec}"
          " as pip is configured (from pip's default index on Linux, that is a CUDA build).",
          file=sys.stderr)  # fmt: skip
    return [*pip, spec]


if __name__ == "__main__":
    subprocess.run(pip_install_command(sys.argv[1] if len(sys.argv) > 1 else "torch"), check=True)

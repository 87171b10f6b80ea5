"""The `ctt` entry point: `--help` and `--version` answer without importing torch or Lightning."""

import re
import subprocess
import sys
from importlib import import_module, metadata
from pathlib import Path

import pytest

from lightning_app import console

from .conftest import subprocess_env

REPO = Path(__file__).resolve().parents[1]


def test_version_is_the_installed_distributions(capsys):
    console.main(["--version"])
    pyproject_version = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert capsys.readouterr().out == f"ctt {pyproject_version}\n"


def test_version_of_an_uninstalled_checkout_says_how_to_install(monkeypatch, capsys):
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    console.main(["--version"])
    assert "pip install -e ." in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_answers_before_importing_torch_or_lightning(flag: str):
    env = subprocess_env()
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "lightning_app", flag],
                         env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "lightning_app.console" in imported  # the list does show this project's own imports
    assert not {"torch", "lightning", "jsonargparse"} & imported
    assert run.stdout == (console.USAGE if flag == "--help" else f"ctt {console.version()}\n")


def test_other_commands_go_to_the_lightning_cli(monkeypatch):
    seen = []
    monkeypatch.setattr("lightning_app.cli.main", seen.append)
    console.main(["fit", "--help"])
    assert seen == [["fit", "--help"]]


def test_ctt_script_is_this_entry_point():
    target = re.search(r'^ctt = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    module, function = target.split(":")
    assert getattr(import_module(module), function) is console.main


def test_lightning_is_imported_without_the_hidden_libraries(tmp_path):
    # Stand-ins that fail when imported, and that pip's metadata says are installed.
    for name in console.HIDDEN_FROM_LIGHTNING:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise RuntimeError('{name} was imported')\n")
        dist_info = tmp_path / f"{name}-99.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 99.0\n")
    probe = (
        "import sys\n"
        "from lightning_utilities.core.imports import RequirementCache\n"
        "from lightning_app import console\n"
        "try:\n"
        "    console.main(['fit', '--help'])  # imports the command line, Lightning and torchmetrics\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0\n"
        "assert 'lightning.pytorch' in sys.modules and not {'torchvision', 'transformers', 'matplotlib'} & set(sys.modules)\n"
        "assert RequirementCache('torchvision') and RequirementCache('Transformers>=4.4')  # later checks see them\n"
        "assert RequirementCache('matplotlib')\n"
    )
    env = subprocess_env()
    env["PYTHONPATH"] = f"{tmp_path}:{env.get('PYTHONPATH', '')}"
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]

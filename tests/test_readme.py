"""Every command in the README runs as written (at small sizes), so the README cannot rot.

Each command runs in a fresh folder (in this process, or through the shell when it uses shell syntax)
that holds the repository's configs, a ./my_texts folder, and, for commands that need one, a finished
tiny run (checkpoints/ and lightning_logs/). `ctt fit`
commands get small sizes appended (later flags win); commands that need a GPU are parsed with
--print_config when there is none. The `make` lines are this suite (make test) and the quickstart
(make train = ctt fit --config configs/quickstart.yaml, run below); the `pip` lines install this folder
(not run here: they would reach a package index), so they are checked for the extras they name.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_app import console

from .conftest import SAMPLE_TEXT

REPO = Path(__file__).resolve().parents[1]
TINY = (
    "--model.dim=32 --model.depth=1 --model.heads=2 --data.context_len=32 --data.batch_size=8 --data.bpe_vocab_size=300"
    " --trainer.max_steps=3 --trainer.max_epochs=1 --trainer.limit_val_batches=2 --sample.length=20"
    " --trainer.enable_progress_bar=false --trainer.enable_model_summary=false"
)


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in lines]
    return [c for c in commands if c and not c.startswith("#")]


COMMANDS = readme_commands()


def test_readme_commands_are_all_covered():
    assert {c.split()[0] for c in COMMANDS} == {"make", "ctt", "pip"}
    assert [c for c in COMMANDS if c.startswith("make")] == ["make train", "make test"]
    assert "train:" in (REPO / "Makefile").read_text() and "ctt fit --config $(CONFIG)" in (REPO / "Makefile").read_text()


def test_readme_pip_commands_install_this_folder_with_declared_extras():
    pip_commands = [c for c in COMMANDS if c.startswith("pip")]
    assert pip_commands and all(re.fullmatch(r"pip install -e '?\.(\[[a-z,]+\])?'?", c) for c in pip_commands)
    pyproject = (REPO / "pyproject.toml").read_text()
    extras = {extra for c in pip_commands for extra in re.findall(r"[a-z]+", c.partition(".")[2])}
    assert extras and all(re.search(rf"^{extra} = \[", pyproject, re.M) for extra in extras)


def devices(command: str) -> int:
    """The number of devices a command asks for (--trainer.devices N; 1 when it names none)."""
    found = re.search(r"--trainer.devices[ =](\d+)", command)
    return int(found[1]) if found else 1


def ctt(folder: Path, command: str, capsys: pytest.CaptureFixture) -> subprocess.CompletedProcess:
    """Run a README command: through the shell when it uses shell syntax (a redirection) or starts a process per
    device (Lightning's launcher runs the command line again for each further rank: here that would be pytest),
    else in this process (the `ctt` script's entry point, without the seconds of importing torch and Lightning again)."""
    launches_ranks = devices(command) > 1 and "--print_config" not in command
    if re.search(r"[<>|&;$`]", command) or launches_ranks:
        bin_dir = Path(sys.executable).parent
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        return subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert Path.cwd() == folder  # conftest runs every test in its own folder
    capsys.readouterr()
    try:
        console.main(shlex.split(command)[1:])
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(command, code, out, err)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("ctt")])
def test_readme_command_runs(command: str, tmp_path: Path, capsys: pytest.CaptureFixture):
    (tmp_path / "configs").symlink_to(REPO / "configs")
    (tmp_path / "my_texts").mkdir()
    (tmp_path / "my_texts" / "a.txt").write_text(SAMPLE_TEXT * 40)
    needs_gpu = any(word in command for word in ("gpu.yaml", "accelerator gpu"))
    if needs_gpu and torch.cuda.is_available() and torch.cuda.device_count() < devices(command):
        pytest.skip(f"needs {devices(command)} GPUs, this machine has {torch.cuda.device_count()}")
    if needs_gpu and not torch.cuda.is_available():
        command += " --print_config"
    elif command.startswith("ctt fit"):
        command += " " + TINY
        if "gutenberg" in command:  # the same run on local text instead of a download (tests stay off the network)
            command += " --data.download_gutenberg=false --data.data_dir=my_texts"
    if any(word in command for word in ("generate", "plot", "--ckpt_path")):
        setup = ctt(tmp_path, f"ctt fit --config configs/quickstart.yaml {TINY}", capsys)
        assert setup.returncode == 0, setup.stderr[-2000:]
    run = ctt(tmp_path, command, capsys)
    assert run.returncode == 0, f"{command}\n{run.stderr[-3000:]}"
    if command.startswith("ctt generate") and ">" not in command:
        assert run.stdout.startswith(shlex.split(command)[shlex.split(command).index("--prompt") + 1])

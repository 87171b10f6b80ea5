"""Resume: a run killed part-way through an epoch and resumed with --ckpt_path last ends where a straight run does."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def ctt(folder: Path, *args: str) -> subprocess.CompletedProcess:
    folder.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "lightning_app", "fit", *args], cwd=folder, env=env, capture_output=True, text=True)


def test_killed_run_resumes_exactly(text_dir: Path, tmp_path: Path):
    args = [
        f"--data.data_dir={text_dir}", "--data.context_len=32", "--data.stride=16", "--data.batch_size=8",
        "--model.dim=32", "--model.depth=1", "--model.heads=2", "--model.warmup_steps=3",
        "--trainer.max_epochs=2", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.val_check_interval=5", "--sample.length=0",
    ]  # fmt: skip
    straight = ctt(tmp_path / "a", *args)
    assert straight.returncode == 0, straight.stderr
    # The first epoch has more than 13 steps: the kill at step 13 lands mid-epoch, after the step-10 validation and checkpoint.
    killed = ctt(tmp_path / "b", *args, "--trainer.callbacks+=tests.probes.KillAtStep", "--trainer.callbacks.step=13")
    assert killed.returncode == -signal.SIGKILL
    assert torch.load(tmp_path / "b/checkpoints/last.ckpt", weights_only=True)["global_step"] == 10
    resumed = ctt(tmp_path / "b", *args, "--ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr

    def final(folder: str) -> dict:
        return torch.load(tmp_path / folder / "checkpoints/last.ckpt", weights_only=True)

    a, b = final("a"), final("b")
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    val_a = a["callbacks"][next(k for k in a["callbacks"] if k.startswith("ModelCheckpoint"))]["current_score"]
    val_b = b["callbacks"][next(k for k in b["callbacks"] if k.startswith("ModelCheckpoint"))]["current_score"]
    assert abs(float(val_a) - float(val_b)) < 1e-4
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(tensor, b["state_dict"][name], rtol=1e-4, atol=1e-5, msg=name)

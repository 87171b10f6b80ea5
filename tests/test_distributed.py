"""Two ranks on one machine (DDP on CPU, gloo): one prepares the data, each trains on its own windows, both agree on val_bpc."""

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_app.cli import main

from .conftest import subprocess_env



def test_two_cpu_ranks(text_dir: Path, tmp_path: Path):
    env = subprocess_env()
    args = [
        "fit", f"--data.data_dir={text_dir}", "--data.context_len=32", "--data.batch_size=8", "--model.dim=32",
        "--model.depth=1", "--model.heads=2", "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
        "--trainer.max_steps=4", "--trainer.limit_val_batches=3", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--sample.length=0", "--trainer.callbacks+=tests.probes.RankReport",
    ]  # fmt: skip
    run = subprocess.run([sys.executable, "-m", "lightning_app", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    batches = dict(re.findall(r"rank (\d): first batch \(8, 32\) sha1 ([0-9a-f]{12})", out))  # ranks share the pipe
    assert set(batches) == {"0", "1"} and batches["0"] != batches["1"], out[-3000:]
    val = dict(re.findall(r"rank (\d): val_bpc (\d+\.\d{6})", out))
    assert set(val) == {"0", "1"} and val["0"] == val["1"]
    assert out.count("Tokenizing") == 1  # rank 0 built the cache; rank 1 waited and mapped it
    assert len(list((tmp_path / ".ctt_cache").glob("*.bin"))) == 1 and not list((tmp_path / ".ctt_cache").glob("*.tmp"))


def test_a_run_resumes_mid_epoch_on_two_ranks(text_dir: Path, tmp_path: Path, caplog):
    # One device trains past the middle of an epoch; the resumed run has half as many batches per device in it.
    args = [
        "fit", f"--data.data_dir={text_dir}", "--data.context_len=16", "--data.batch_size=64", "--model.dim=32",
        "--model.depth=1", "--model.heads=2", "--trainer.accelerator=cpu", "--trainer.limit_val_batches=2",
        "--trainer.val_check_interval=3", "--trainer.enable_progress_bar=false", "--sample.length=0",
    ]  # fmt: skip
    with caplog.at_level("INFO"):
        main([*args, "--trainer.max_steps=9"])  # in this process, in tmp_path
    per_epoch = int(re.search(r"(\d+) batches of 64 per device per epoch", caplog.text)[1])
    assert per_epoch // 2 < 9 < per_epoch  # mid-epoch, and past what one of two devices has in an epoch
    two = ["--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.max_steps=12", "--ckpt_path=last"]
    command = [sys.executable, "-m", "lightning_app", *args, *two]
    resumed = subprocess.run(command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming run checkpoints/version_0 at step 9" in resumed.stderr and "Stopped at step 12" in resumed.stderr


@pytest.mark.parametrize("only_rank", [None, 1], ids=["every rank", "rank 1 alone"])
def test_a_signal_stops_every_rank_after_the_same_step(text_dir: Path, tmp_path: Path, only_rank: int | None):
    # SIGTERM to every process of the run at once, as schedulers send it, or to one: all ranks save the step, exit 143.
    args = [
        "fit", f"--data.data_dir={text_dir}", "--data.context_len=16", "--data.batch_size=8", "--model.dim=32",
        "--model.depth=1", "--model.heads=2", "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
        "--trainer.max_steps=40", "--trainer.val_check_interval=5", "--trainer.limit_val_batches=2",
        "--trainer.enable_progress_bar=false", "--sample.length=0",
        "--trainer.callbacks+=tests.signal_probes.SignalRanksAtStep", "--trainer.callbacks.step=7",
        f"--trainer.callbacks.only_rank={'null' if only_rank is None else only_rank}",
    ]  # fmt: skip
    command = [sys.executable, "-m", "lightning_app", *args]
    run = subprocess.Popen(command, cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True)  # fmt: skip
    try:
        out, err = run.communicate(timeout=120)
    finally:  # a run that hangs leaves no process behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Traceback" not in err
    assert "Stopped by SIGTERM at step 7; resume with --ckpt_path checkpoints/version_0/last.ckpt" in err
    assert torch.load(tmp_path / "checkpoints/version_0/last.ckpt", weights_only=True)["global_step"] == 7

"""Resume: a stopped or killed run continues in its own folders and ends where an uninterrupted run does."""

import csv
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_app.cli import main

from .conftest import SAMPLE_TEXT, subprocess_env

# Two short epochs (8 steps each) with a validation and a checkpoint every 4 steps.
ARGS = [
    "--data.context_len=32", "--data.stride=16", "--data.batch_size=8", "--model.dim=32", "--model.depth=1",
    "--model.heads=2", "--model.warmup_steps=3", "--trainer.max_epochs=2", "--trainer.limit_train_batches=8",
    "--trainer.val_check_interval=4", "--trainer.limit_val_batches=2", "--trainer.log_every_n_steps=1",
    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--sample.length=0",
]  # fmt: skip


def ctt(folder: Path, text_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """A run in a process of its own: for the runs that are killed or stopped by a signal."""
    folder.mkdir(exist_ok=True)
    env = subprocess_env()
    command = [sys.executable, "-m", "lightning_app", "fit", f"--data.data_dir={text_dir}", *ARGS, *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def fit_in(folder: Path, text_dir: Path, *args: str) -> None:
    """A run in this process (no second import of torch and Lightning), in ``folder``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        main(["fit", f"--data.data_dir={text_dir}", *ARGS, *args])


def last(folder: Path) -> dict:
    return torch.load(folder / "checkpoints/version_0/last.ckpt", weights_only=True)


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The last checkpoint of an uninterrupted run."""
    folder = tmp_path_factory.mktemp("straight")
    text_dir = folder / "corpus"
    text_dir.mkdir()
    (text_dir / "a.txt").write_text(SAMPLE_TEXT * 80, encoding="utf-8")
    fit_in(folder, text_dir)
    return {"text_dir": text_dir, "last": last(folder)}


def assert_same_end(a: dict, b: dict) -> None:
    assert (a["global_step"], a["epoch"]) == (b["global_step"], b["epoch"])
    score = [next(v for k, v in c["callbacks"].items() if k.startswith("ModelCheckpoint"))["current_score"] for c in (a, b)]
    assert abs(float(score[0]) - float(score[1])) < 1e-4
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(tensor, b["state_dict"][name], rtol=1e-4, atol=1e-5, msg=name)


def test_killed_run_resumes_exactly(straight: dict, tmp_path: Path):
    # The kill at step 7 lands mid-epoch, after the step-4 validation and checkpoint; the resumed run crosses into epoch 2.
    killed = ctt(tmp_path, straight["text_dir"], "--trainer.callbacks+=tests.probes.KillAtStep", "--trainer.callbacks.step=7")
    assert killed.returncode == -signal.SIGKILL
    assert last(tmp_path)["global_step"] == 4
    fit_in(tmp_path, straight["text_dir"], "--ckpt_path=last")
    assert_same_end(straight["last"], last(tmp_path))


@pytest.mark.parametrize(("signum", "status", "step"), [(signal.SIGTERM, 143, 6), (signal.SIGINT, 130, 2)])
def test_a_stop_signal_saves_the_step_says_how_to_resume_and_exits_non_zero(
    straight: dict, tmp_path: Path, caplog, signum, status, step
):
    probe = ["--trainer.callbacks+=tests.signal_probes.SignalAtStep", f"--trainer.callbacks.step={step}", f"--trainer.callbacks.signum={signum}"]
    stopped = ctt(tmp_path, straight["text_dir"], *probe)
    assert stopped.returncode == status, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr and last(tmp_path)["global_step"] == step
    name = signal.Signals(signum).name
    assert f"Stopped by {name} at step {step}; resume with --ckpt_path checkpoints/version_0/last.ckpt" in stopped.stderr
    with caplog.at_level("INFO"):
        fit_in(tmp_path, straight["text_dir"], "--ckpt_path=last")
    assert f"Resuming run checkpoints/version_0 at step {step}" in caplog.text
    assert_same_end(straight["last"], last(tmp_path))
    # Stopped before its first validation (step 2), the run must still write last.ckpt itself after the resume,
    # not last-v1.ckpt, so that a later --ckpt_path last finds its end.
    assert not list((tmp_path / "checkpoints/version_0").glob("last-v*"))
    if signum == signal.SIGINT:
        return  # the log's rows were checked after the other stop
    rows = (tmp_path / "lightning_logs/version_0/metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    steps = [row.split(",")[header.index("step")] for row in rows[1:] if row.split(",")[header.index("train_loss")]]
    assert steps == [str(step) for step in range(16)]  # the run's one log: every step once, none lost or repeated
    assert not (tmp_path / "lightning_logs/version_1").exists() and not (tmp_path / "checkpoints/version_1").exists()


TINY = [*ARGS, "--trainer.max_epochs=1", "--trainer.limit_train_batches=4"]  # one validation, at step 4


def fit(text_dir: Path, *args: str) -> None:
    main(["fit", f"--data.data_dir={text_dir}", *TINY, *args])


def test_last_resumes_the_newest_run_with_these_settings_and_leaves_others_alone(text_dir: Path, caplog):
    fit(text_dir)  # version_0
    fit(text_dir, "--model.pos_encoding=rotary")  # version_1, newer, other settings
    other = {p.name: p.read_bytes() for p in Path("checkpoints/version_1").glob("*.ckpt")}
    with caplog.at_level("INFO"):
        fit(text_dir, "--ckpt_path=last", "--trainer.max_epochs=2")
    assert "Resuming run checkpoints/version_0 at step 4 from checkpoints/version_0/last.ckpt" in caplog.text
    assert torch.load("checkpoints/version_0/last.ckpt", weights_only=True)["global_step"] == 8
    assert {p.name: p.read_bytes() for p in Path("checkpoints/version_1").glob("*.ckpt")} == other
    assert sorted(p.name for p in Path("checkpoints").glob("version_*")) == ["version_0", "version_1"]


def test_a_longer_resumed_run_takes_its_first_step_at_its_own_learning_rate(text_dir: Path):
    fit(text_dir)  # 4 steps: the cosine schedule ends at min_lr 0
    fit(text_dir, "--ckpt_path=last", "--trainer.max_epochs=2")  # 8 steps: step 4 is early in the decay
    with open("lightning_logs/version_0/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    lr = {int(row["step"]): float(row["lr/pg1"]) for row in rows if row.get("lr/pg1")}
    progress = (4 - 3) / (8 - 3)  # 3 warmup steps
    assert lr[4] == pytest.approx(3e-4 * 0.5 * (1 + math.cos(math.pi * progress)))  # not the saved run's 0


def test_a_metrics_row_cut_short_by_a_kill_is_dropped_on_resume(text_dir: Path):
    fit(text_dir)
    metrics = Path("lightning_logs/version_0/metrics.csv")
    metrics.write_text(metrics.read_text() + "0,")  # killed while writing a row
    fit(text_dir, "--ckpt_path=last", "--trainer.max_epochs=2")
    rows = list(csv.reader(metrics.open()))
    assert all(len(row) == len(rows[0]) for row in rows) and "7" in [row[rows[0].index("step")] for row in rows]  # the resumed steps


def test_last_without_a_checkpoint_starts_from_scratch_and_says_so(text_dir: Path, caplog):
    with caplog.at_level("INFO"):
        fit(text_dir, "--ckpt_path=last")
    assert "--ckpt_path last: there is no checkpoint to resume yet, so training starts from scratch." in caplog.text
    assert torch.load("checkpoints/version_0/last.ckpt", weights_only=True)["global_step"] == 4


def test_resuming_with_other_settings_names_them(text_dir: Path, capsys):
    fit(text_dir)
    for path in ("checkpoints/version_0/last.ckpt", "last"):
        with pytest.raises(SystemExit) as exit_:
            fit(text_dir, f"--ckpt_path={path}", "--model.dim=64", "--data.vocab=char")
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 1 and err.count("\n") == 0 and "Traceback" not in err
        assert "model.dim 32 (this command: 64); data.vocab 'byte' (this command: 'char')" in err


def test_resuming_on_other_text_is_refused_and_scoring_on_it_is_said(text_dir: Path, tmp_path: Path, capsys, caplog):
    # Trained with data.data_dir left out while ./data did not exist: the embedded corpus. Then ./data appears.
    main(["fit", *TINY, "--trainer.max_steps=2"])
    saved = Path("checkpoints/version_0/last.ckpt").read_bytes()
    Path("data").mkdir()
    (Path("data") / "a.txt").write_text((text_dir / "a.txt").read_text())
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *TINY, "--trainer.max_steps=4", "--ckpt_path=last"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 1 and err.count("\n") == 0 and "Traceback" not in err
    assert "the checkpoint was trained on the embedded default corpus" in err and "this command reads data (1 .txt files" in err
    assert Path("checkpoints/version_0/last.ckpt").read_bytes() == saved
    with caplog.at_level("WARNING"):
        main(["validate", "--ckpt_path=checkpoints/version_0/last.ckpt", "--trainer.enable_progress_bar=false"])
    assert "Scoring on other text than the training text: the checkpoint was trained on the embedded" in caplog.text


def test_resuming_with_another_seed_is_refused(text_dir: Path, capsys):
    # The seed orders the training windows: another one would train some windows twice and skip others.
    fit(text_dir)
    with pytest.raises(SystemExit) as exit_:
        fit(text_dir, "--ckpt_path=last", "--trainer.max_epochs=2", "--seed_everything=7")
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 1 and err.count("\n") == 0
    assert "trained with seed_everything 1337, and this command sets 7" in err


def test_a_checkpoint_outside_the_runs_resumes_as_a_new_run(text_dir: Path, caplog):
    fit(text_dir)
    Path("checkpoints/version_0/last.ckpt").rename("kept.ckpt")
    with caplog.at_level("INFO"):
        fit(text_dir, "--ckpt_path=kept.ckpt", "--trainer.max_epochs=2")
    assert "Resuming kept.ckpt at step 4 as a new run, checkpoints/version_1." in caplog.text
    assert torch.load("checkpoints/version_1/last.ckpt", weights_only=True)["global_step"] == 8
    assert not Path("checkpoints/version_0/last.ckpt").exists()


def test_a_signal_before_training_stops_at_once_and_leaves_nothing_behind(straight: dict, tmp_path: Path):
    stopped = ctt(tmp_path, straight["text_dir"], "--trainer.callbacks+=tests.signal_probes.SignalInSetup", "--trainer.callbacks.signum=2")
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == "Interrupted by SIGINT; checkpoints already written are kept."
    assert not (tmp_path / "checkpoints").exists()  # the run had written nothing: its folders are gone

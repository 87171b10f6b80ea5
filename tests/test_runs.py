"""Run folders: claimed atomically, numbered alike for checkpoints and logs, locked while a run goes on."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonargparse import Namespace

from lightning_app.cli import main
from lightning_app.errors import UsageError
from lightning_app.runs import LAST, RunFolders, probe_writable

from .conftest import subprocess_env

CSV = Namespace(class_path="lightning.pytorch.loggers.CSVLogger", init_args=Namespace(save_dir=".", name="lightning_logs", version=None))


def folders(dirpath: str | None = "checkpoints", logger=CSV) -> RunFolders:
    return RunFolders.from_config(Namespace(trainer=Namespace(logger=logger), checkpoint=Namespace(dirpath=dirpath)))


def test_runs_take_the_same_free_number_for_checkpoints_and_logs():
    Path("lightning_logs/version_4").mkdir(parents=True)  # e.g. a validate run: no checkpoint folder
    first, second = folders().create(None), folders().create(None)
    assert (first.name, second.name) == ("version_5", "version_6")
    assert first.checkpoint_dir == Path("checkpoints/version_5") and first.log_dirs == [Path("lightning_logs/version_5")]
    assert second.checkpoint_dir.is_dir() and second.log_dirs[0].is_dir()


def test_a_run_that_lost_the_race_for_a_number_takes_the_next(monkeypatch):
    monkeypatch.setattr(RunFolders, "run_names", lambda self: set())  # both runs looked before either made its folders
    first, second = folders().create(None), folders().create(None)
    assert (first.name, second.name) == ("version_0", "version_1")


def test_without_a_checkpoint_folder_checkpoints_go_into_the_log_folder():
    run = folders(dirpath=None).create(None)
    assert run.checkpoint_dir == Path("lightning_logs/version_0/checkpoints") and run.checkpoint_dir.is_dir()
    assert folders(dirpath=None).run_of(run.checkpoint_dir / LAST) == "version_0"


def test_a_named_logger_version_is_the_run_name_and_is_never_reused():
    named = Namespace(class_path=CSV.class_path, init_args=Namespace(save_dir=".", name="lightning_logs", version="baseline"))
    assert folders(logger=named).create(folders(logger=named).named).log_dirs == [Path("lightning_logs/baseline")]
    with pytest.raises(UsageError, match="already holds a run; choose another trainer.logger.version"):
        folders(logger=named).create("baseline")


def test_a_running_run_is_locked_and_a_failed_one_leaves_nothing_behind():
    run = folders().create(None)
    assert folders().in_use("version_0")
    with pytest.raises(UsageError, match="still going in another process"):
        folders().reopen("version_0")
    run.release()
    assert not folders().in_use("version_0")
    assert not Path("checkpoints").exists() and not Path("lightning_logs").exists()  # it wrote nothing: all removed


def test_last_checkpoints_are_newest_first_and_belong_to_their_runs():
    for name in ("version_0", "version_1"):
        run = folders().create(None)
        (run.checkpoint_dir / LAST).write_bytes(b"")
        os.utime(run.checkpoint_dir / LAST, (1, 2 if name == "version_0" else 1))
    Path("checkpoints/model.ckpt").symlink_to("version_1/last.ckpt")
    assert folders().last_checkpoints() == [Path("checkpoints/version_0/last.ckpt"), Path("checkpoints/version_1/last.ckpt")]
    assert folders().run_of(Path("checkpoints/model.ckpt")) == "version_1"  # a link belongs to the run it points into
    Path("elsewhere.ckpt").write_bytes(b"")
    assert folders().run_of(Path("elsewhere.ckpt")) is None


@pytest.mark.parametrize("in_the_way", ["a/b", "a"])
def test_a_folder_that_cannot_be_made_is_named(tmp_path: Path, in_the_way: str):
    target = tmp_path / "a" / "b"
    (tmp_path / in_the_way).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / in_the_way).write_text("")  # a file where the folder, or a folder above it, should be
    with pytest.raises(UsageError, match=f"data.cache_dir {target} cannot be used: a file is in the way"):
        probe_writable(target, "data.cache_dir")


def test_runs_started_together_never_share_a_folder(text_dir: Path, tmp_path: Path):
    tiny = [
        f"--data.data_dir={text_dir}", "--model.dim=16", "--model.depth=1", "--model.heads=2", "--data.context_len=16",
        "--data.batch_size=8", "--trainer.max_steps=3", "--trainer.limit_val_batches=1", "--sample.length=0",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.log_every_n_steps=1",
    ]  # fmt: skip
    env = subprocess_env()
    runs = [subprocess.Popen([sys.executable, "-m", "lightning_app", "fit", *tiny, f"--model.lr={lr}"], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for lr in (1e-3, 2e-3)]  # fmt: skip
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()[-2000:]
    logs = sorted(tmp_path.glob("lightning_logs/version_*"))
    assert [p.name for p in logs] == ["version_0", "version_1"]
    assert sorted(p.name for p in tmp_path.glob("checkpoints/version_*")) == ["version_0", "version_1"]
    lrs = set()
    for log in logs:  # each log folder holds one whole run: its own config and all its steps, once each
        config = (log / "config.yaml").read_text()
        lrs.add(next(line.split()[-1] for line in config.splitlines() if line.strip().startswith("lr:")))
        with open(log / "metrics.csv") as f:
            steps = [row["step"] for row in csv.DictReader(f) if row["train_bpc"]]
        assert steps == ["0", "1", "2"]
    assert lrs == {"0.001", "0.002"}


@pytest.mark.parametrize("flags", [["--checkpoint.filename=model-{step}"], ["--checkpoint.save_top_k=2"]])
def test_the_top_level_links_keep_their_names_whatever_the_files_are_called(text_dir: Path, flags: list[str]):
    tiny = ["--model.dim=32", "--model.depth=1", "--model.heads=2", "--data.context_len=32", "--data.batch_size=8"]
    steps = ["--trainer.max_steps=8", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=2", "--sample.length=0"]
    main(["fit", f"--data.data_dir={text_dir}", *tiny, *steps, *flags])
    links = sorted(p.name for p in Path("checkpoints").iterdir() if p.is_symlink())
    assert links == ["last.ckpt", "model.ckpt"]  # no link named after a file, none left dangling
    best = Path("checkpoints/model.ckpt").resolve()
    assert best.parent.name == "version_0" and best.name != "last.ckpt" and best.is_file()


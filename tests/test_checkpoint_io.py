from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from lightning_app.checkpoint_io import CheckpointFiles
from lightning_app.cli import main


def test_a_checkpoint_is_written_whole_and_reads_back(tmp_path: Path):
    path = tmp_path / "runs" / "model.ckpt"  # the folder is made
    CheckpointFiles().save_checkpoint({"state_dict": {"w": torch.arange(4.0)}, "global_step": 3}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded["global_step"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.arange(4.0))
    assert [p.name for p in path.parent.iterdir()] == ["model.ckpt"]  # no temporary file left


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path: Path):
    path = tmp_path / "model.ckpt"
    CheckpointFiles().save_checkpoint({"global_step": 1}, path)
    with pytest.raises(Exception):
        CheckpointFiles().save_checkpoint({"global_step": 2, "not saveable": lambda: None}, path)
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]


class WriterProbe(Callback):
    used: list[str] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        WriterProbe.used.append(type(trainer.strategy.checkpoint_io).__name__)


TINY = ["--model.dim=32", "--model.depth=1", "--model.heads=2", "--data.context_len=32", "--data.batch_size=8",
        "--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--sample.length=0",
        "--trainer.callbacks+=tests.test_checkpoint_io.WriterProbe"]  # fmt: skip


def test_fit_saves_its_checkpoints_with_it(text_dir: Path):
    WriterProbe.used.clear()
    main(["fit", *TINY, f"--data.data_dir={text_dir}"])
    assert WriterProbe.used == ["CheckpointFiles"]
    assert torch.load("checkpoints/model.ckpt", weights_only=True)["global_step"] == 2


def test_a_checkpoint_plugin_of_the_users_own_is_kept(text_dir: Path):
    WriterProbe.used.clear()
    main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.plugins=lightning.pytorch.plugins.io.AsyncCheckpointIO"])
    assert WriterProbe.used == ["AsyncCheckpointIO"]
    assert torch.load("checkpoints/model.ckpt", weights_only=True)["global_step"] == 2

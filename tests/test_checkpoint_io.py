import errno
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.strategies import SingleDeviceStrategy

from lightning_app import checkpoint_io
from lightning_app.checkpoint_io import CheckpointFiles, wait_for_checkpoints
from lightning_app.checkpoints import Checkpoints
from lightning_app.cli import main
from lightning_app.errors import UsageError


def test_a_checkpoint_is_written_whole_and_reads_back(tmp_path: Path):
    path = tmp_path / "runs" / "model.ckpt"  # the folder is made
    writer = CheckpointFiles()
    writer.save_checkpoint({"state_dict": {"w": torch.arange(4.0)}, "global_step": 3}, path)
    writer.teardown()
    loaded = torch.load(path, weights_only=True)
    assert loaded["global_step"] == 3 and torch.equal(loaded["state_dict"]["w"], torch.arange(4.0))
    assert [p.name for p in path.parent.iterdir()] == ["model.ckpt"]  # no temporary file left


def test_a_failed_save_keeps_the_previous_checkpoint_and_its_error_is_raised(tmp_path: Path):
    path = tmp_path / "model.ckpt"
    writer = CheckpointFiles()
    writer.save_checkpoint({"global_step": 1}, path)
    writer.save_checkpoint({"global_step": 2, "not saveable": lambda: None}, path)
    with pytest.raises(Exception, match="lambda"):
        writer.teardown()  # the background write's own error
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]


def test_nothing_asked_after_a_failed_save_is_done(tmp_path: Path):
    writer = CheckpointFiles()
    writer.save_checkpoint({"global_step": 4}, tmp_path / "model.ckpt")  # the best so far
    writer.save_checkpoint({"global_step": 6}, tmp_path / "last.ckpt")
    writer.wait()
    writer.save_checkpoint({"global_step": 8, "not saveable": lambda: None}, tmp_path / "model.ckpt")  # a new best fails
    writer.link(tmp_path / "model.ckpt", tmp_path / "last.ckpt")  # would turn last.ckpt back into the step-4 model
    with pytest.raises(Exception, match="lambda"):
        writer.teardown()
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 6


def test_a_full_disk_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def full(path, write):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None  # as torch.save does

    monkeypatch.setattr(checkpoint_io, "write_atomically", full)
    writer = CheckpointFiles()
    writer.save_checkpoint({"global_step": 1}, tmp_path / "model.ckpt")
    with pytest.raises(UsageError, match=r"The checkpoint .*model.ckpt cannot be used: no space left on device; free space"):
        writer.teardown()


@pytest.fixture
def held_writes(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Background writes wait until the returned event is set."""
    release = threading.Event()
    write = checkpoint_io.write_atomically
    monkeypatch.setattr(checkpoint_io, "write_atomically", lambda *args: (release.wait(5), write(*args)))
    return release


def test_the_saved_state_is_the_one_at_the_save_not_at_the_write(tmp_path: Path, held_writes: threading.Event):
    weights = torch.zeros(3)
    writer = CheckpointFiles()
    writer.save_checkpoint({"state_dict": {"w": weights}}, tmp_path / "model.ckpt")
    weights += 1  # training goes on while the file is written
    held_writes.set()
    writer.teardown()
    assert torch.equal(torch.load(tmp_path / "model.ckpt", weights_only=True)["state_dict"]["w"], torch.zeros(3))


def test_writes_links_and_removals_happen_in_the_order_asked(tmp_path: Path, held_writes: threading.Event):
    writer = CheckpointFiles()
    torch.save({"global_step": 1}, tmp_path / "old.ckpt")
    writer.save_checkpoint({"global_step": 2}, tmp_path / "model.ckpt")
    writer.link(tmp_path / "model.ckpt", tmp_path / "last.ckpt")  # while model.ckpt is still to be written
    writer.remove_checkpoint(tmp_path / "old.ckpt")
    assert writer.is_pending(tmp_path / "model.ckpt") and writer.is_pending(str(tmp_path / "last.ckpt"))
    assert not (tmp_path / "model.ckpt").exists() and (tmp_path / "old.ckpt").exists()
    held_writes.set()
    writer.save_checkpoint({"global_step": 3}, tmp_path / "model.ckpt")  # replaces model.ckpt, not last.ckpt
    writer.teardown()
    assert not writer.is_pending(tmp_path / "model.ckpt") and not writer.is_pending(tmp_path / "last.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "model.ckpt"]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 2
    assert torch.load(tmp_path / "model.ckpt", weights_only=True)["global_step"] == 3


def test_a_name_still_to_be_written_is_taken(tmp_path: Path, held_writes: threading.Event):
    # Lightning asks before it picks a file name (model.ckpt, then model-v1.ckpt, ...).
    writer = CheckpointFiles()
    trainer = SimpleNamespace(strategy=SingleDeviceStrategy(checkpoint_io=writer), is_global_zero=True)
    writer.save_checkpoint({"global_step": 1}, tmp_path / "model.ckpt")
    callback = Checkpoints(dirpath=tmp_path)
    assert callback.file_exists(str(tmp_path / "model.ckpt"), trainer)
    assert not callback.file_exists(str(tmp_path / "model-v1.ckpt"), trainer)
    held_writes.set()
    writer.teardown()


def test_a_quiet_teardown_logs_a_write_error_instead_of_raising_it(tmp_path: Path, caplog):
    writer = CheckpointFiles()
    writer.save_checkpoint({"not saveable": lambda: None}, tmp_path / "model.ckpt")
    writer.teardown(quiet=True)  # while another exception ends the run
    assert "A checkpoint could not be written" in caplog.text
    writer.teardown()  # Lightning's own teardown after it: the error was reported once


def test_a_run_failing_after_a_failed_write_ends_with_its_own_error(text_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog):
    write = checkpoint_io.write_atomically

    def disk_full_for_the_last_one(path: Path, *args) -> None:
        if path.name == "extra.ckpt":
            raise OSError(28, "No space left on device")
        write(path, *args)

    monkeypatch.setattr(checkpoint_io, "write_atomically", disk_full_for_the_last_one)
    with pytest.raises(RuntimeError, match="the run's own error"):
        main(["fit", *TINY, f"--data.data_dir={text_dir}", "--trainer.callbacks+=tests.test_checkpoint_io.FailAtTheEnd"])
    assert "A checkpoint could not be written: The checkpoint" in caplog.text and "cannot be used: no space left on device" in caplog.text


class FailAtTheEnd(Callback):
    """Asks for one more checkpoint, then fails while it is written."""

    def on_train_end(self, trainer, pl_module) -> None:
        trainer.save_checkpoint("extra.ckpt")
        raise RuntimeError("the run's own error")


def test_tied_tensors_stay_one_in_the_file(tmp_path: Path):
    weight = torch.randn(4, 3)
    writer = CheckpointFiles()
    writer.save_checkpoint({"state_dict": {"embed.weight": weight.detach(), "head.weight": weight.detach()}}, tmp_path / "model.ckpt")
    writer.teardown()
    state = torch.load(tmp_path / "model.ckpt", weights_only=True)["state_dict"]
    assert state["embed.weight"].untyped_storage().data_ptr() == state["head.weight"].untyped_storage().data_ptr()


def test_waiting_for_the_checkpoints_raises_a_write_error(tmp_path: Path):
    writer = CheckpointFiles()
    trainer = SimpleNamespace(strategy=SimpleNamespace(checkpoint_io=writer))
    writer.save_checkpoint({"not saveable": lambda: None}, tmp_path / "model.ckpt")
    wait_for_checkpoints(trainer, raise_error=False)  # waits, and leaves the error to the next call
    assert not writer.is_pending(tmp_path / "model.ckpt")
    with pytest.raises(Exception, match="lambda"):
        wait_for_checkpoints(trainer)
    writer.teardown()  # the error was raised once


def test_a_link_becomes_a_copy_where_hard_links_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def no_links(*args):
        raise OSError("hard links are not supported here")

    monkeypatch.setattr(checkpoint_io.os, "link", no_links)
    writer = CheckpointFiles()
    writer.save_checkpoint({"global_step": 2}, tmp_path / "model.ckpt")
    writer.link(tmp_path / "model.ckpt", tmp_path / "last.ckpt")
    writer.teardown()
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 2
    assert (tmp_path / "last.ckpt").stat().st_ino != (tmp_path / "model.ckpt").stat().st_ino


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

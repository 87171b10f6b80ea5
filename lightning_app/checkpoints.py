"""Checkpoints: Lightning's ModelCheckpoint, with ``last.ckpt`` written at every validation.

With a monitored metric, Lightning 2.6 writes ``last.ckpt`` only at a step that also wrote a new
best model, so after the best a run's "last" checkpoint stands still, and resuming from it
restarts from the best step rather than the latest one. This subclass writes it at every
validation as well. At a validation that has just written a new best model, ``last.ckpt`` is the
same state: it becomes a hard link to ``model.ckpt`` instead of a second copy (saving the state of
a small model can take longer than the training between two validations). A checkpoint file is
replaced by renaming a new one onto it, so a later save of either name never changes the other.
It writes with ``checkpoint_io.CheckpointFiles`` (in the background, links included) in place of
Lightning's plain writer; with a checkpoint plugin of the user's own, which is kept, ``last.ckpt`` is
always a save of its own. A run whose folder was moved or copied resumes with its files where they now are.
It also gives the ``checkpoint.*`` options a title that says what they do.
"""

from __future__ import annotations

import os
from typing import Any

from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from .checkpoint_io import CheckpointFiles


class Checkpoints(ModelCheckpoint):
    """The best model (lowest val_bpc) and the latest state of each run, written at every validation."""

    @property
    def state_key(self) -> str:
        # Saved under ModelCheckpoint's name, as before: checkpoints keep their layout and older ones resume.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # A run's folder that was moved or copied (a requeued job on another scratch path) still holds its files:
        # its paths are taken over to where they are now. Lightning would forget them, write last-v1.ckpt beside
        # the old last.ckpt and keep the best model's path in the old place.
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath and self._moved(state_dict.get("last_model_path", ""), old):
            names = ("best_model_path", "kth_best_model_path", "last_model_path")
            paths = {name: self._moved(state_dict.get(name, ""), old) or "" for name in names}
            best_k = {self._moved(path, old): score for path, score in state_dict.get("best_k_models", {}).items()}
            best_k = {path: score for path, score in best_k.items() if path}
            state_dict = {**state_dict, **paths, "dirpath": self.dirpath, "best_k_models": best_k}
        super().load_state_dict(state_dict)

    def _moved(self, path: str, old: str) -> str | None:
        """Where the file ``path`` of folder ``old`` is in this callback's folder, if it is there."""
        if not path:
            return None
        relative = os.path.relpath(path, old)
        if relative.startswith(".."):  # outside the run's folder
            return None
        moved = os.path.join(self.dirpath, relative)
        return moved if os.path.isfile(moved) else None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's plain writer, not a plugin of the user's
            trainer.strategy.checkpoint_io = CheckpointFiles()

    # Lightning saves at the end of validation, or (when validation runs at each epoch's end) at the end of
    # the training epoch; after its own save, in the same place, last.ckpt is brought up to date.

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def _save_last_if_behind(self, trainer: Trainer) -> None:
        # Lightning's own rule skipped last.ckpt when no new best was written at this step.
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, Any]) -> None:
        best = self.best_model_path
        filepath = self.format_checkpoint_name(monitor_candidates, self.CHECKPOINT_NAME_LAST)
        # Only once last.ckpt is this run's recorded last path: the best model's file holds the callback's state
        # as it was before this save, and a resume must read that path back to keep writing last.ckpt.
        same_state = self._last_checkpoint_saved == best and self._last_global_step_saved == trainer.global_step
        writer = trainer.strategy.checkpoint_io
        # A local file that this writer wrote (a sharded checkpoint is a folder that the strategy writes itself).
        linkable = isinstance(writer, CheckpointFiles) and "://" not in best and (writer.is_pending(best) or os.path.isfile(best))
        linkable = trainer.strategy.broadcast(linkable)  # rank 0 writes: its answer holds for every rank
        if not (self.save_last and best and same_state and self.last_model_path == filepath and linkable):
            super()._save_last_checkpoint(trainer, monitor_candidates)
            return
        if trainer.is_global_zero:
            writer.link(best, filepath)  # after the best model's own write, which may still be going on
        self.last_model_path = filepath

    def file_exists(self, filepath: str, trainer: Trainer) -> bool:
        # Lightning looks at the disk alone before it picks a name (model-v1.ckpt, ...): a name whose write is
        # still queued is taken as well.
        writer = trainer.strategy.checkpoint_io
        queued = trainer.is_global_zero and isinstance(writer, CheckpointFiles) and writer.is_pending(filepath)
        return trainer.strategy.reduce_boolean_decision(queued, all=False) or super().file_exists(filepath, trainer)

    # Lightning's strategies wait for the writer when they tear down, but not every one does (FSDP does not).

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        if isinstance(trainer.strategy.checkpoint_io, CheckpointFiles):
            trainer.strategy.checkpoint_io.teardown()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        super().on_exception(trainer, pl_module, exception)
        if isinstance(trainer.strategy.checkpoint_io, CheckpointFiles):
            trainer.strategy.checkpoint_io.teardown(quiet=True)  # a write error is logged: the exception ending the run comes first

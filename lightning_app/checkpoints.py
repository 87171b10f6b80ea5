"""Checkpoints: Lightning's ModelCheckpoint, with ``last.ckpt`` written at every validation.

With a monitored metric, Lightning 2.6 writes ``last.ckpt`` only at a step that also wrote a new
best model, so after the best a run's "last" checkpoint stands still, and resuming from it
restarts from the best step rather than the latest one. This subclass writes it at every
validation as well. (It also gives the ``checkpoint.*`` options a title that says what they do.)
"""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class Checkpoints(ModelCheckpoint):
    """The best model (lowest val_bpc) and the latest state of each run, written at every validation."""

    @property
    def state_key(self) -> str:
        # Saved under ModelCheckpoint's name, as before: checkpoints keep their layout and older ones resume.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

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

"""Three rules of every training run, as callbacks: stop on a non-finite loss, validate at the last step,
and log training values from the first steps.

``LanguageModel.configure_callbacks`` adds them, so they hold with a plain ``Trainer`` too.
"""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


def is_logging_step(trainer: Trainer, step: int) -> bool:
    """Whether training values logged at optimizer step ``step`` (counted from 1) reach the logger:
    every trainer.log_every_n_steps steps (never when it is 0) and at the last step."""
    every = trainer.log_every_n_steps
    return every > 0 and (step % every == 0 or step == trainer.max_steps)


class StopOnNonFiniteLoss(Callback):
    """Stops the run with one clear error once the training loss has been NaN or infinite, before any checkpoint of such weights.

    The LanguageModel notes a non-finite loss in a device flag every step (``nonfinite``), without
    waiting for the GPU; this reads the flag only where the host waits anyway: on Lightning's
    logging steps and before each validation (so no checkpoint is written from NaN weights).
    """

    def _check(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.strategy.reduce_boolean_decision(bool(pl_module.nonfinite), all=False):  # any rank
            raise FloatingPointError(
                f"The training loss became NaN or infinite by step {trainer.global_step}; lower model.lr "
                f"(now {pl_module.hparams.lr:g}) or raise model.warmup_steps, then run again."
            )

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if is_logging_step(trainer, trainer.global_step):  # the step just taken
            self._check(trainer, pl_module)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check(trainer, pl_module)


class ValidateAtLastStep(Callback):
    """Lightning validates at epoch ends and every val_check_interval, but not when max_steps ends a run
    mid-epoch; asking it to stop at the last step makes it validate (and checkpoint) once more."""

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True


class LogThroughoutTheRun(Callback):
    """Training values reach the logger every trainer.log_every_n_steps (50 by default), so a shorter run would
    log none: this lowers it to log at least 20 times over the run (0, no logging, stays 0). The NaN check
    above reads the GPU on the same steps."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        if math.isfinite(total) and trainer.log_every_n_steps > 0:
            trainer.log_every_n_steps = max(1, min(trainer.log_every_n_steps, int(total) // 20))

"""EMA: Lightning's exponential moving average of the weights, for a model whose network is built in ``setup``.

Lightning's ``EMAWeightAveraging`` validates and saves the averaged weights, and leaves them in
the model when training ends. It copies the LightningModule when fit begins, which here is
before ``LanguageModel.setup`` has built the network (it needs the datamodule's vocabulary), so
this subclass builds it first. Only parameters are averaged: the buffers are constants (position
tables, the metric's characters per token). The average is updated at least as often as the run
validates, so that no two validations score the same weights (which horizon.patience would count as
validations that bring nothing new).
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.utilities import rank_zero_info


class EMA(EMAWeightAveraging):
    def __init__(self, decay: float = 0.9, update_every_n_steps: int = 10) -> None:
        """Validate, checkpoint and sample with an exponential moving average of the weights.

        Args:
            decay: Weight kept by the average at each update (0.9 every 10 steps is a half-life of about 66 steps).
            update_every_n_steps: Steps between updates (each update costs a pass over the weights).
        """
        if not 0 < decay < 1 or update_every_n_steps <= 0:
            raise ValueError(f"EMA decay must be in (0, 1) and update_every_n_steps positive, got {decay} and {update_every_n_steps}.")
        super().__init__(decay=decay, update_every_n_steps=update_every_n_steps, use_buffers=False)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        pl_module.setup(stage)  # builds the network once; a second call from Lightning does nothing
        super().setup(trainer, pl_module, stage)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        # Here, not in on_train_start: horizon.* sets the validation interval in its own on_train_start.
        if not isinstance(trainer.val_check_batch, int):  # validation by epochs or by time
            return
        every = max(1, trainer.val_check_batch // trainer.accumulate_grad_batches)  # in optimizer steps
        if every < self.update_every_n_steps:
            rank_zero_info(f"EMA: updated every {every} steps instead of {self.update_every_n_steps}, as often as validation runs.")
            self.update_every_n_steps = every

"""How long a run trains: a step budget from the corpus and the model, and an early cool-down when validation stalls.

A fixed step count suits one corpus: on a smaller one the model starts overfitting long before the
end, on a larger one it stops while still learning. ``Horizon`` sizes the run from what it is given:

- the budget: ``passes`` passes over the training tokens, at most ``tokens_per_param`` tokens per
  model parameter (about 20 is the compute-optimal ratio of Hoffmann et al., 2022), and at least
  ``min_steps``; it applies when the trainer has no limit of its own (``trainer.max_epochs -1`` and
  no ``trainer.max_steps``): a limit the user sets wins, except over a resumed run whose early decay
  has begun, which ends where its decay does (the learning rate is at its floor after that); a
  resumed run keeps the budget it started with;
- validation ``checks`` times over the run (when the trainer validates by steps and
  ``trainer.val_check_interval`` is not a step count of its own);
- with ``patience``: when ``patience`` validations in a row bring no new best ``val_bpc``, the
  warmup-stable-decay schedule starts its decay at once and the run ends when the decay does.

The choices and, at the end, the reason the run stopped are printed in one line each.
"""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info


class Horizon(Callback):
    def __init__(
        self, passes: float = 0.0, tokens_per_param: float = 20.0, min_steps: int = 200, checks: int = 20, patience: int = 0
    ) -> None:
        """Run length from the corpus, and an early cool-down when validation stops improving.

        Args:
            passes: Passes over the training tokens to budget when the trainer has no limit (trainer.max_epochs -1, no trainer.max_steps); 0 turns the budget off.
            tokens_per_param: At most this many training tokens per model parameter (caps the budget on large corpora).
            min_steps: At least this many steps (floors the budget on tiny corpora).
            checks: Validations over the run (with horizon.passes > 0 and trainer.check_val_every_n_epoch null), unless trainer.val_check_interval is a step count.
            patience: Validations without a new best val_bpc after which the learning rate decays (model.schedule wsd) and the run ends; 0 turns it off.
        """
        for name, value in (("passes", passes), ("tokens_per_param", tokens_per_param), ("min_steps", min_steps), ("checks", checks), ("patience", patience)):
            if value < 0 or (name in ("tokens_per_param", "checks") and value == 0):
                raise ValueError(f"horizon.{name} must be {'positive' if name in ('tokens_per_param', 'checks') else '>= 0'}, got {value}.")
        self.passes, self.tokens_per_param, self.min_steps, self.checks, self.patience = passes, tokens_per_param, min_steps, checks, patience
        self.best = math.inf
        self.best_step = 0
        self.stalled = 0  # validations since the last new best
        self.cooldown_at: int | None = None  # the step the early decay began at
        self.max_steps: int | None = None  # the budget or the shortened end, once set (restored on resume)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit" and self.patience and pl_module.hparams.get("schedule") != "wsd":
            raise ValueError("horizon.patience needs model.schedule wsd, whose decay can start early; set it, or set horizon.patience 0.")

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        users_limit = trainer.max_steps > 0 or trainer.max_epochs not in (None, -1)
        if users_limit and self.cooldown_at is None:
            self.max_steps = None  # a limit given now (also when resuming a budgeted run) wins over the budget
        resumed = self.max_steps is not None  # restored from the checkpoint, whatever horizon.* says now
        if not users_limit and not resumed and self.passes:
            self.max_steps = self._budget(trainer, pl_module)
        if self.max_steps is not None:  # a budget, or an end moved by an early decay (restored on resume)
            trainer.fit_loop.epoch_loop.max_steps = self.max_steps
        if not self.passes:
            return
        validates_by_step = trainer.check_val_every_n_epoch is None and getattr(trainer, "_val_check_time_interval", None) is None
        total = trainer.estimated_stepping_batches
        if validates_by_step and not isinstance(trainer.val_check_interval, int) and math.isfinite(total):
            # val_check_batch counts batches, the run optimizer steps.
            trainer.val_check_batch = max(1, int(total) // self.checks) * trainer.accumulate_grad_batches
        rank_zero_info(f"Run length: {self._plan(trainer, pl_module, resumed)}.")

    def _tokens(self, trainer: Trainer) -> tuple[int, int]:
        """Training tokens in the corpus, and tokens consumed per optimizer step (all devices)."""
        data = trainer.datamodule
        per_step = data.hparams.batch_size * data.hparams.context_len * trainer.world_size * trainer.accumulate_grad_batches
        return len(data.train_set.tokens), per_step

    def _steps_for_tokens(self, trainer: Trainer, pl_module: LightningModule) -> int:
        """Steps for the smaller of ``passes`` passes and ``tokens_per_param`` tokens per parameter."""
        corpus, per_step = self._tokens(trainer)
        # Counted when the network was built: under FSDP pl_module.parameters() holds one rank's shard.
        tokens = min(self.passes * corpus, self.tokens_per_param * pl_module.parameter_count)
        return math.ceil(tokens / per_step)

    def _budget(self, trainer: Trainer, pl_module: LightningModule) -> int:
        return max(self.min_steps, self._steps_for_tokens(trainer, pl_module))

    def _plan(self, trainer: Trainer, pl_module: LightningModule, resumed: bool) -> str:
        corpus, per_step = self._tokens(trainer)
        total, hp = trainer.estimated_stepping_batches, pl_module.hparams
        if not math.isfinite(total):
            return "no end of its own (trainer.max_epochs -1 and no trainer.max_steps)"
        steps = int(total)
        if self.max_steps is None:
            length = f"{steps:,} steps, as the trainer's max_steps or max_epochs say"
        elif resumed:
            length = f"{steps:,} steps, kept from the run being resumed"
        else:
            raised = self._steps_for_tokens(trainer, pl_module) < self.min_steps
            floor = f", raised to horizon.min_steps {self.min_steps:,}" if raised else ""
            length = (
                f"{steps:,} steps ({steps * per_step / corpus:.1f} passes over {corpus:,} training tokens, {per_step:,} per step; "
                f"at most {self.passes:g} passes and {self.tokens_per_param:g} tokens per parameter{floor})"
            )
        if self.cooldown_at is not None:  # a resumed run whose early decay has begun
            schedule = f"a linear decay from step {self.cooldown_at:,}, begun early when validation stopped improving"
        elif hp.schedule == "wsd":
            schedule = f"peak learning rate until step {pl_module.schedule.planned_start(steps):,}, then a linear decay"
        else:
            schedule = f"{hp.schedule} schedule"
        if trainer.val_check_batch is None:
            validation = "validation on the trainer's clock"
        else:
            validation = f"validation every {trainer.val_check_batch // trainer.accumulate_grad_batches:,} steps"
        early = f"; the decay starts early after {self.patience} validations without a new best val_bpc"
        if not self.patience or self.cooldown_at is not None:
            early = ""
        return f"{length}; {schedule}; {validation}{early}"

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or "val_bpc" not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics["val_bpc"])
        if value < self.best:
            self.best, self.best_step, self.stalled = value, trainer.global_step, 0
            return
        self.stalled += 1
        if self.patience and self.stalled >= self.patience and self.cooldown_at is None:
            end = pl_module.schedule.decay_now(trainer.global_step)
            if end is None:  # still warming up (tried again at the next validation), or the planned decay has begun
                return
            self.cooldown_at, self.max_steps = trainer.global_step, end
            trainer.fit_loop.epoch_loop.max_steps = end
            rank_zero_info(
                f"val_bpc has not improved for {self.stalled} validations (best {self.best:.4f} at step {self.best_step:,}): "
                f"the learning rate decays from now to step {self.max_steps:,}, where the run ends."
            )

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        ended = self.max_steps is not None and trainer.global_step >= self.max_steps
        if ended and self.cooldown_at is not None:
            reason = f"validation stopped improving, so the decay started early at step {self.cooldown_at:,}"
        elif ended:
            reason = "the budgeted run is complete"
        else:
            reason = "the trainer or a callback ended it (max_steps, max_epochs, max_time or an early stop)"
        best = f"; best val_bpc {self.best:.4f} at step {self.best_step:,}" if self.best < math.inf else ""
        rank_zero_info(f"Stopped at step {trainer.global_step:,}: {reason}{best}.")

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ("best", "best_step", "stalled", "cooldown_at", "max_steps")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)

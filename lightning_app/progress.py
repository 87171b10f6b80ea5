"""RunProgress: progress over the whole run, not over one epoch.

Lightning's bar counts the batches of the current epoch, which says little when a run is a step
budget (a 640-step run over an epoch of 204 batches) and nothing about when it will end. This one
counts optimizer steps against the run's last step (``trainer.max_steps``, or the steps that
``max_epochs`` make), with the elapsed time, an estimate of the time left and the latest
``train_loss`` and ``train_bpc``. On a terminal it is a bar redrawn in place; when the output goes
to a file or a pipe it prints a plain line every ``1 / lines`` of the run instead, so a log stays
small and readable. Validation results are printed as lines of their own either way.

It is a plain callback, not a Lightning ``ProgressBar``: the CLI turns Lightning's own bar off by
default (``trainer.enable_progress_bar false``), and turning that on again adds it beside this one.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from tqdm import tqdm

SHOWN = ("train_loss", "train_bpc", "tokens_per_sec", "mfu")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class RunProgress(Callback):
    def __init__(self, enabled: bool = True, refresh_rate: int = 20, lines: int = 20) -> None:
        """Progress over the whole run (steps of the run's last step, time left, latest train_loss and train_bpc) and validation lines.

        Args:
            enabled: Show it (on the first process only).
            refresh_rate: Steps between redraws of the bar on a terminal.
            lines: Progress lines over the run when the output is not a terminal.
        """
        if refresh_rate <= 0 or lines <= 0:
            raise ValueError(f"progress.refresh_rate and progress.lines must be positive, got {refresh_rate} and {lines}.")
        self.enabled, self.refresh_rate, self.lines = enabled, refresh_rate, lines
        self._bar: tqdm | None = None
        self._start = 0.0
        self._start_step = 0
        self._next_line = 0

    def _shown(self, trainer: Trainer) -> bool:
        return self.enabled and trainer.is_global_zero and not trainer.sanity_checking

    @staticmethod
    def _total(trainer: Trainer) -> int | None:
        total = trainer.estimated_stepping_batches  # the first of max_steps and the end of max_epochs
        return int(total) if math.isfinite(total) else None

    def _values(self, trainer: Trainer) -> str:
        metrics = trainer.progress_bar_metrics
        parts = []
        for name in SHOWN:
            if name in metrics:
                value = float(metrics[name])
                parts.append(f"{name} {value:,.0f}" if name == "tokens_per_sec" else f"{name} {value:.4g}")
        return ", ".join(parts)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._shown(trainer):
            return
        self._start, self._start_step = time.perf_counter(), trainer.global_step
        self._next_line = trainer.global_step
        if sys.stdout.isatty():
            self._bar = tqdm(total=self._total(trainer), initial=trainer.global_step, unit="step", dynamic_ncols=True, file=sys.stdout)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self._shown(trainer):
            return
        step, total = trainer.global_step, self._total(trainer)
        if self._bar is not None:
            if step % self.refresh_rate == 0 or step == total:
                self._bar.total = total  # an early cool-down can move the end
                self._bar.update(step - self._bar.n)
                self._bar.set_postfix_str(self._values(trainer), refresh=True)
            return
        if step >= self._next_line or step == total:
            self._next_line = step + max(1, (total or 0) // self.lines or 50)
            self._print_line(trainer, step, total)

    def _print_line(self, trainer: Trainer, step: int, total: int | None) -> None:
        elapsed = time.perf_counter() - self._start
        done = step - self._start_step
        where = f"step {step:,}"
        if total:
            where += f"/{total:,} ({step / total:.0%})"
        timing = _duration(elapsed)
        if total and done > 0 and step < total:
            timing += f", about {_duration(elapsed / done * (total - step))} left"
        values = self._values(trainer)
        print(f"{where} | {timing}" + (f" | {values}" if values else ""), flush=True)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._shown(trainer) or trainer.state.fn != "fit" or "val_bpc" not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics["val_bpc"])
        # The checkpoint callback (which Lightning runs last) still holds the best before this validation.
        checkpoint = trainer.checkpoint_callback
        previous = getattr(checkpoint, "best_model_score", None)
        best = value if previous is None else min(value, float(previous))
        line = f"validation at step {trainer.global_step:,}: val_bpc {value:.4f} (best {best:.4f})"
        if self._bar is not None:
            self._bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

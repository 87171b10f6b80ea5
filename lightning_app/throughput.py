"""Training throughput: tokens/s and MFU logged during fit, and the end-of-fit summary."""

from __future__ import annotations

import time
import warnings
from typing import Any

import torch
from lightning.fabric.utilities.throughput import get_available_flops
from lightning.pytorch import Callback, LightningModule, Trainer

from .host_values import on_host


def peak_flops(device: torch.device, precision: str = "bf16-mixed") -> float | None:
    """The chip's peak FLOP/s for the run's precision, from Lightning's table (None off GPUs and for chips it lacks)."""
    if device.type != "cuda":
        return None
    dtype = torch.bfloat16 if "bf16" in precision else torch.float16 if "16" in precision else torch.float32
    with warnings.catch_warnings():  # an unknown chip only means no MFU
        warnings.simplefilter("ignore")
        return get_available_flops(device, dtype)


class Throughput(Callback):
    """Training throughput (tokens/s, MFU) and the end-of-fit summary."""

    # Hand-written rather than Lightning's ThroughputMonitor, which waits for the GPU after every batch:
    # this waits once per window, so measuring does not slow down the steps it measures (a recorded
    # step takes about 3 ms; a wait for the GPU after each one cost more than that).

    def __init__(self, window: int = 50) -> None:
        """Training throughput, logged as tokens_per_sec (and mfu on GPUs of known peak), and the end-of-fit summary.

        Args:
            window: Steps between throughput measurements.
        """
        if window <= 0:
            raise ValueError(f"throughput.window must be a positive integer, got {window}.")
        self.window = window
        self.tokens = 0
        self._start: float | None = None
        self._start_tokens = 0
        self.tokens_per_sec: float | None = None
        self.mfu: float | None = None

    def _now(self, trainer: Trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize(trainer.strategy.root_device)
        return time.perf_counter()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.tokens += batch[0].numel() * trainer.world_size
        step = trainer.global_step
        if step % self.window or step == 0:
            return
        now = self._now(trainer)
        if self._start is not None:
            self.tokens_per_sec = (self.tokens - self._start_tokens) / (now - self._start)
            metrics = {"tokens_per_sec": self.tokens_per_sec}
            peak = peak_flops(trainer.strategy.root_device, str(trainer.precision))
            if peak:
                self.mfu = self.tokens_per_sec * pl_module.model.flops_per_token() / (peak * trainer.world_size)
                metrics["mfu"] = self.mfu
            pl_module.log_dict(on_host(metrics), prog_bar=True, on_step=True, on_epoch=False, rank_zero_only=True)
        self._start, self._start_tokens = now, self.tokens

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start = None  # validation time is not training throughput

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        lines = [f"--- run summary: fit took {time.perf_counter() - self._fit_start:.0f} s ---"]
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.best_model_path:
            lines.append(f"best val_bpc {float(checkpoint.best_model_score):.4f}: {checkpoint.best_model_path}")
        if self.tokens_per_sec:
            mfu = f", MFU {self.mfu:.1%}" if self.mfu else ""
            lines.append(f"training throughput {self.tokens_per_sec:,.0f} tokens/s{mfu} ({trainer.global_step} steps)")
        print("\n".join(lines), flush=True)

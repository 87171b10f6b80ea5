"""Side jobs of a run: measuring throughput, summing the run up and writing a sample after ``fit``."""

from __future__ import annotations

import time

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.strategies import FSDPStrategy

from .sampling import generate
from .tokenizer import Tokenizer


def sample_text(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    prompt: str,
    length: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    num_samples: int = 1,
) -> list[str]:
    """``num_samples`` continuations of ``prompt`` (each including the prompt), decoded to text."""
    device = next(model.parameters()).device
    ids = torch.as_tensor(tokenizer.encode(prompt).astype("int64"), device=device).repeat(num_samples, 1)
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    out = generate(model, ids, length, temperature, top_k, top_p, generator)
    return [tokenizer.decode(row.tolist()) for row in out]


class SampleText(Callback):
    def __init__(self, length: int = 200, prompt: str = "The", temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> None:
        """Text generated after fit, to see what the model learned.

        Args:
            length: Tokens to generate after training (0 turns the sample off).
            prompt: Text the sample starts from.
            temperature: Softmax temperature (0 is greedy).
            top_k: Keep only the k most likely tokens (0 = off).
            top_p: Keep the smallest set of tokens holding this much probability (1.0 = off).
        """
        if length < 0 or temperature < 0 or top_k < 0 or not 0 < top_p <= 1:
            raise ValueError("sample.length, temperature and top_k must be >= 0 and sample.top_p in (0, 1].")
        self.length, self.prompt, self.temperature, self.top_k, self.top_p = length, prompt, temperature, top_k, top_p

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.length == 0 or not trainer.is_global_zero:
            return
        if isinstance(trainer.strategy, FSDPStrategy):  # the weights are sharded across processes
            print("No sample under FSDP: write one with `ctt generate --ckpt_path` on the saved checkpoint.", flush=True)
            return
        (text,) = sample_text(pl_module.model, pl_module.tokenizer, self.prompt, self.length, self.temperature, self.top_k, self.top_p)
        print(f"\n--- sample ({self.length} tokens, temperature {self.temperature}, top_k {self.top_k}) ---\n{text}\n---", flush=True)


# Dense bf16 peaks from the datasheets (FLOP/s), for MFU.
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


class Throughput(Callback):
    """Training tokens/s (and MFU on GPUs of known peak), logged every ``window`` steps, and an end-of-fit summary.

    Unlike Lightning's ThroughputMonitor, which synchronizes the GPU after every batch, this waits for
    the device only once per window, so measuring does not slow down the steps it measures.
    """

    def __init__(self, window: int = 50) -> None:
        """Training throughput, logged as tokens_per_sec (and mfu), and the end-of-fit summary.

        Args:
            window: Steps between throughput measurements.
        """
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

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        self.tokens += batch[0].numel() * trainer.world_size
        step = trainer.global_step
        if step % self.window or step == 0:
            return
        now = self._now(trainer)
        if self._start is not None:
            self.tokens_per_sec = (self.tokens - self._start_tokens) / (now - self._start)
            metrics = {"tokens_per_sec": self.tokens_per_sec}
            peak = peak_flops(trainer.strategy.root_device)
            if peak:
                self.mfu = self.tokens_per_sec * pl_module.model.flops_per_token() / (peak * trainer.world_size)
                metrics["mfu"] = self.mfu
            pl_module.log_dict(metrics, prog_bar=True, on_step=True, on_epoch=False, rank_zero_only=True)
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

"""Side jobs of a run: writing a sample after ``fit``."""

from __future__ import annotations

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

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
        (text,) = sample_text(pl_module.model, pl_module.tokenizer, self.prompt, self.length, self.temperature, self.top_k, self.top_p)
        print(f"\n--- sample ({self.length} tokens, temperature {self.temperature}, top_k {self.top_k}) ---\n{text}\n---", flush=True)

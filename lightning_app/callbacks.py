"""The after-fit sample: text generated from the trained model, to see what it learned."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.strategies import FSDPStrategy

from .sampling import sample_text


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
        if length and not prompt:
            raise ValueError("sample.prompt must hold at least one character.")
        self.length, self.prompt, self.temperature, self.top_k, self.top_p = length, prompt, temperature, top_k, top_p

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.length:  # a prompt the vocabulary cannot encode fails now, not after training
            pl_module.tokenizer.encode(self.prompt)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.length == 0 or not trainer.is_global_zero:
            return
        if isinstance(trainer.strategy, FSDPStrategy):  # the weights are sharded across processes
            print("No sample under FSDP: write one with `ctt generate --ckpt_path` on the saved checkpoint.", flush=True)
            return
        (text,) = sample_text(pl_module.model, pl_module.tokenizer, self.prompt, self.length, self.temperature, self.top_k, self.top_p)
        print(f"\n--- sample ({self.length} tokens, temperature {self.temperature}, top_k {self.top_k}) ---\n{text}\n---", flush=True)

"""The sample after training: text generated from the trained model, to see what it learned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.strategies import FSDPStrategy

from .errors import UsageError
from .sampling import SamplingOptions, printable, sample_text


@dataclass(eq=False)  # eq=False keeps callbacks hashable by identity, as Lightning expects
class SampleText(SamplingOptions, Callback):
    """Text generated after fit, to see what the model learned.

    The options (the ``sample.*`` keys) are ``SamplingOptions``; the text streams as it is produced.

    Args:
        length: Tokens to generate after training (0 turns the sample off).
        prompt: Text the sample starts from.
    """

    key_prefix: ClassVar[str] = "sample."

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.length:
            return
        try:  # a prompt the vocabulary cannot encode fails now, not after training
            pl_module.tokenizer.encode(self.prompt)
        except ValueError as err:  # only a char vocabulary lacks characters
            missing = "".join(sorted(set(self.prompt) - set(pl_module.tokenizer.chars)))
            raise UsageError(
                f"sample.prompt {self.prompt!r} holds characters that this corpus lacks ({missing!r}); set --sample.prompt "
                "to text from the corpus, or --sample.length 0 to skip the sample."
            ) from err

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # At the end of training, not of fit: by on_fit_end Lightning has moved the model to the CPU,
        # where a GPU-sized model samples slowly (and an averaging callback has already put in its weights).
        if self.length == 0 or not trainer.is_global_zero:
            return
        if isinstance(trainer.strategy, FSDPStrategy):  # the weights are sharded across processes
            print("No sample under FSDP: write one with `ctt generate --ckpt_path` on the saved checkpoint.", flush=True)
            return
        print(f"\n--- sample ({self.length} tokens, temperature {self.temperature}, top_k {self.top_k}) ---", flush=True)
        print(printable(self.prompt), end="", flush=True)
        sample_text(pl_module.model, pl_module.tokenizer, self, on_text=lambda text: print(text, end="", flush=True))
        print("\n---", flush=True)

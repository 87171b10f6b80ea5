"""LanguageModel: the training logic around ``TinyDecoderLM`` (loss, BPC metrics, AdamW, cosine schedule).

The network itself is built in ``setup``, once the datamodule knows the vocabulary, or from the
tokenizer stored in a checkpoint, so ``LanguageModel.load_from_checkpoint(path)`` needs no arguments.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule

from .metrics import BitsPerCharacter
from .model import TinyDecoderLM
from .tokenizer import Tokenizer, tokenizer_from_dict

CHECKPOINT_FORMAT = 1  # bump when the checkpoint layout changes


class LanguageModel(LightningModule):
    def __init__(
        self,
        dim: int = 256,
        depth: int = 6,
        heads: int = 8,
        dropout: float = 0.0,
        context_len: int = 256,
        lr: float = 3e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        """Decoder-only Transformer language model and its optimisation.

        Args:
            dim: Embedding/hidden dimension (even, divisible by heads).
            depth: Number of decoder blocks.
            heads: Attention heads per block.
            dropout: Dropout applied in attention and feed-forward blocks.
            context_len: Maximum sequence length (set from data.context_len).
            lr: AdamW peak learning rate.
            weight_decay: AdamW weight decay (matrices and embeddings only, not norms).
            warmup_steps: Linear learning-rate warmup steps before the cosine decay.
            min_lr: Learning rate that the cosine decay ends at.
        """
        super().__init__()
        self.save_hyperparameters()
        for name, value in (("dim", dim), ("depth", depth), ("heads", heads), ("context_len", context_len)):
            if value <= 0:
                raise ValueError(f"model.{name} must be a positive integer, got {value}.")
        if dim % heads:
            raise ValueError(f"model.dim ({dim}) must be divisible by model.heads ({heads}).")
        if dim % 2:
            raise ValueError(f"model.dim must be even for sinusoidal positions, got {dim}.")
        if lr <= 0 or not 0 <= min_lr <= lr:
            raise ValueError(f"model.lr must be positive and model.min_lr in [0, lr], got lr={lr}, min_lr={min_lr}.")
        self.model: TinyDecoderLM | None = None
        self.tokenizer: Tokenizer | None = None

    def _build(self, tokenizer: Tokenizer) -> None:
        hp = self.hparams
        self.tokenizer = tokenizer
        self.model = TinyDecoderLM(tokenizer.vocab_size, hp.dim, hp.depth, hp.heads, hp.context_len, hp.dropout)
        chars = torch.from_numpy(tokenizer.chars_per_token())
        self.train_bpc = BitsPerCharacter(chars)
        self.val_bpc = BitsPerCharacter(chars)

    def setup(self, stage: str) -> None:
        if self.model is None:
            datamodule = self.trainer.datamodule
            if datamodule is None:
                raise RuntimeError("LanguageModel learns its vocabulary from the datamodule; pass one to the Trainer.")
            self._build(datamodule.tokenizer)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)

    def _nll(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch  # (B, T), (B, T)
        logits = self.model(x)  # (B, T, V)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="none")  # (B*T,)
        return nll, y.flatten()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        nll, targets = self._nll(batch)
        loss = nll.mean()
        self.train_bpc(nll, targets)
        self.log("train_loss", loss, prog_bar=True)
        self.log("train_bpc", self.train_bpc, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Lightning validates at epoch ends and every val_check_interval, but not when max_steps ends a run
        # mid-epoch; asking it to stop at the last step makes it validate (and checkpoint) once more.
        if 0 < self.trainer.max_steps <= self.trainer.global_step:
            self.trainer.should_stop = True

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        nll, targets = self._nll(batch)
        self.val_bpc.update(nll, targets)
        self.log("val_loss", nll.mean(), batch_size=batch[0].size(0), sync_dist=True)
        self.log("val_bpc", self.val_bpc, prog_bar=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        # Decay matrices and embeddings; leave norm gains (1-D) alone.
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": hp.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, fused=self.device.type == "cuda")
        total = max(1, self.trainer.estimated_stepping_batches)
        warmup, floor = hp.warmup_steps, hp.min_lr / hp.lr

        def lr_factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["tokenizer"] = self.tokenizer.to_dict()
        checkpoint["ctt_format"] = CHECKPOINT_FORMAT

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if checkpoint.get("ctt_format") != CHECKPOINT_FORMAT or "tokenizer" not in checkpoint:
            raise ValueError(
                f"This checkpoint was not written by this version of the trainer (format "
                f"{checkpoint.get('ctt_format')!r}, expected {CHECKPOINT_FORMAT}); train a new one."
            )
        tokenizer = tokenizer_from_dict(checkpoint["tokenizer"])
        if self.model is None:
            self._build(tokenizer)
        elif tokenizer.to_dict() != self.tokenizer.to_dict():
            raise ValueError("The checkpoint's tokenizer differs from this run's data; use the same data and data.vocab.")

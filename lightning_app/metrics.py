"""Bits per character as a torchmetrics ``Metric``.

The number of characters a target token stands for comes from the tokenizer
(``chars_per_token``): 1 per char token, 1 per UTF-8 lead byte and 0 per continuation byte for
the byte tokenizer, so BPC means the same thing whatever the vocabulary.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric


class BitsPerCharacter(Metric):
    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, chars_per_token: torch.Tensor, **kwargs) -> None:
        super().__init__(**kwargs)
        self.register_buffer("chars_per_token", chars_per_token.to(torch.int64), persistent=False)
        self.add_state("nll_bits", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("chars", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, nll: torch.Tensor, targets: torch.Tensor) -> None:
        """``nll``: per-token negative log-likelihood in nats; ``targets``: the token ids it scored (same shape)."""
        self.nll_bits += nll.detach().sum(dtype=torch.float64) / math.log(2)
        self.chars += self.chars_per_token[targets].sum()

    def compute(self) -> torch.Tensor:
        return (self.nll_bits / self.chars).float()

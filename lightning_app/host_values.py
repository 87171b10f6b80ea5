"""Training values made ready for ``self.log``: scalars on the host, so logging never waits for the GPU."""

from __future__ import annotations

import torch


def on_host(values: dict[str, torch.Tensor | float]) -> dict[str, torch.Tensor]:
    """Scalars as CPU tensors, for ``self.log`` of progress-bar values during training.

    Lightning reads every progress-bar value (``.item()``) after every training step, not only after
    the step that logged it. A value on the GPU would make each read wait for all the work queued
    there, so the host could no longer run ahead of the GPU; a CPU value costs nothing to read.
    """
    return {name: torch.as_tensor(value).detach().float().cpu() for name, value in values.items()}

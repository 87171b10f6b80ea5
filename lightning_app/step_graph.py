"""StepGraph: a whole training step (forward, backward, clipping, AdamW) recorded once as a CUDA graph.

A small model's step is a few hundred short kernels, and launching them from Python takes longer
than the GPU needs to run them. Recorded once, the step becomes one graph launch. A graph replays
fixed kernels on fixed memory, so:

- each batch is copied into the same input buffers, and must keep the recorded shape;
- the gradients live in the graph's memory and are written, not added to, by every replay;
- the optimizer must update on the GPU alone (torch's fused AdamW, whose step counter lives there,
  or one that says ``capturable`` in its defaults, as ``optim.MuonAdamW`` does), and its learning rates
  are read from GPU tensors refilled from the param groups before each replay, so a scheduler that
  sets ``group["lr"]`` keeps working and the param groups (and checkpoints) keep plain floats.
  Other optimizer settings (betas, weight decay) are fixed when the step is recorded.

The first ``warmup`` calls run the step eagerly on a side stream, as PyTorch's CUDA-graph notes
ask (and as torch.compile needs, to compile before the capture); they are real training steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .cuda_graph import on_side_stream, record

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]


def capturable(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer's step reads nothing back to the host, so a CUDA graph can record it."""
    return bool(optimizer.defaults.get("fused") or optimizer.defaults.get("capturable"))


class StepGraph:
    def __init__(self, step: Step, optimizer: torch.optim.Optimizer, warmup: int = 3) -> None:
        """``step(x, y)`` runs one optimizer step on inputs and targets (B, T) and returns its outputs (tensors)."""
        if not capturable(optimizer):
            raise ValueError("A recorded step needs an optimizer that updates on the GPU alone (fused, or capturable).")
        self.step, self.optimizer, self.warmup = step, optimizer, warmup
        self.eager_calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[torch.Tensor, ...] = ()
        self.outputs: tuple[torch.Tensor, ...] = ()
        self.lrs: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.graph is None:
            if self.eager_calls < self.warmup:
                self.eager_calls += 1
                return self._eager(x, y)
            self._capture(x, y)
        for given, recorded in zip((x, y), self.inputs):
            if given.shape != recorded.shape or given.dtype != recorded.dtype:
                raise ValueError(
                    f"The recorded step takes {recorded.dtype} batches of shape {tuple(recorded.shape)}, "
                    f"got {given.dtype} {tuple(given.shape)}."
                )
            recorded.copy_(given)
        for group, lr in zip(self.optimizer.param_groups, self.lrs):
            lr.fill_(group["lr"])  # a fill with a Python number: no wait for the GPU
        self.graph.replay()
        return self.outputs

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.optimizer.zero_grad(set_to_none=True)
        return on_side_stream(self.step, x, y)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        groups = self.optimizer.param_groups
        self.inputs = (x.clone(), y.clone())
        self.lrs = [torch.tensor(float(group["lr"]), device=x.device) for group in groups]
        plain = [(group["lr"], group["capturable"]) for group in groups]
        # Gradients are made during the capture, in the graph's memory.
        self.optimizer.zero_grad(set_to_none=True)
        try:
            for group, lr in zip(groups, self.lrs):
                group["lr"], group["capturable"] = lr, True  # capturable only lifts the optimizer's capture guard
            # Autocast's cache of cast weights would hand the capture's placeholders to later eager code.
            dtype, enabled = torch.get_autocast_dtype("cuda"), torch.is_autocast_enabled("cuda")
            autocast = torch.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=False)
            with autocast:
                self.graph, self.outputs = record(self.step, *self.inputs)
        finally:
            for group, (lr, capturable) in zip(groups, plain):
                group["lr"], group["capturable"] = lr, capturable

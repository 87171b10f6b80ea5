"""MuonAdamW: Muon for the hidden matrices, AdamW for everything else, as one optimizer.

Muon (Keller Jordan, 2024) replaces each matrix's momentum by the nearest semi-orthogonal matrix
before applying it, so every direction of the update moves at the same speed; on small
Transformers it reaches a given loss in fewer steps than AdamW. It suits the 2-D weights inside
the blocks; embeddings, the output head and the norm gains stay on AdamW.

One optimizer object, because Lightning's automatic optimization, gradient clipping and the
learning-rate scheduler all expect one. Written here rather than taken from ``torch.optim.Muon``
(PyTorch 2.9+) because that one turns its learning rate into a Python number every step: inside
a recorded CUDA graph (``step_graph.py``) the rate must stay a GPU tensor, or the schedule would
be frozen at the value it had when the step was recorded. Every update below takes ``lr`` as a
number or a 0-d tensor alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


def orthogonalize(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """An approximation of U V^T for each matrix g = U S V^T (singular values pushed towards 1), in bfloat16.

    ``g`` is one matrix (R, C) or a stack of them (N, R, C). The quintic Newton-Schulz iteration of
    the Muon reference: its coefficients trade exactness (singular values land in about [0.7, 1.2])
    for converging in five steps.
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16()
    tall = x.size(-2) > x.size(-1)
    if tall:  # iterate on the smaller Gram matrix
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)  # spectral norm <= Frobenius norm <= 1: inside the basin
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if tall else x


class MuonAdamW(torch.optim.Optimizer):
    def __init__(
        self,
        groups: Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.95,
        ns_steps: int = 5,
    ) -> None:
        """Parameter groups with ``"muon": True`` (2-D matrices only) get Muon, the others AdamW.

        One learning rate serves both: a Muon update is scaled to the RMS of a typical AdamW update
        (0.2 * sqrt(max(rows, cols)), as in Moonshot's "Muon is scalable"), so AdamW-tuned rates,
        the schedule and decoupled weight decay (``lr * weight_decay``) carry over.
        """
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum=momentum, ns_steps=ns_steps, muon=False)
        # capturable: every update runs on the device (no host reads), so step_graph may record it.
        super().__init__(groups, defaults | {"capturable": True})
        for group in self.param_groups:
            if group["muon"] and any(p.dim() != 2 for p in group["params"]):
                raise ValueError("Muon updates matrices only; put vectors and scalars in an AdamW group.")

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params and group["weight_decay"]:
                torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])  # decoupled weight decay
            if group["muon"]:
                self._muon(group, params)
            else:
                self._adamw(group, params)
        return loss

    def _muon(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        momentum = group["momentum"]
        for p in params:
            if not self.state[p]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p)
        # Matrices of one shape are orthogonalized as one batch: a few large kernels instead of many small ones.
        shapes: dict[torch.Size, list[torch.Tensor]] = {}
        for p in params:
            shapes.setdefault(p.shape, []).append(p)
        for shape, same in shapes.items():
            grads = [p.grad for p in same]
            bufs = [self.state[p]["momentum_buffer"] for p in same]
            torch._foreach_lerp_(bufs, grads, 1 - momentum)
            updates = torch.stack(grads).lerp_(torch.stack(bufs), momentum)  # Nesterov momentum, (N, R, C)
            updates = orthogonalize(updates, group["ns_steps"]).float() * (group["lr"] * 0.2 * max(shape) ** 0.5)
            torch._foreach_sub_(same, updates.unbind())

    def _adamw(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
        beta1, beta2 = group["betas"]
        for p in params:
            if not self.state[p]:
                # The step count lives on the device, as a recorded graph needs.
                self.state[p].update(step=torch.zeros((), device=p.device), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        if not params:
            return
        steps = [self.state[p]["step"] for p in params]
        exp_avgs = [self.state[p]["exp_avg"] for p in params]
        exp_avg_sqs = [self.state[p]["exp_avg_sq"] for p in params]
        grads = [p.grad for p in params]
        torch._foreach_add_(steps, 1)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        step = steps[0]  # the parameters of a group step together
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        denoms = torch._foreach_div(exp_avg_sqs, bias2)
        torch._foreach_sqrt_(denoms)
        torch._foreach_add_(denoms, group["eps"])
        updates = torch._foreach_div(exp_avgs, denoms)
        torch._foreach_mul_(updates, group["lr"] / bias1)
        torch._foreach_sub_(params, updates)

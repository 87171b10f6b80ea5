"""The learning-rate schedule: a factor of the peak rate per optimizer step, for ``LambdaLR``.

Two shapes after a linear warmup:

- ``cosine``: cosine decay from the peak to ``floor`` at the last step (the single-file trainer's schedule);
- ``wsd`` (warmup-stable-decay): the peak, then a straight line to ``floor`` over the last
  ``decay_fraction`` of the steps after the warmup (the share leaves the warmup out, as cosine's
  progress does, so a short run's warmup does not eat its time at the peak). Its end can be moved
  while training (``decay_now``): a run whose validation stops improving cools down from where it
  is instead of finishing a fixed plan.

``LambdaLR`` saves the attributes of this object in its ``state_dict``, so a resumed run keeps a
moved end.
"""

from __future__ import annotations

import math
from typing import Literal


class LearningRateSchedule:
    def __init__(
        self, shape: Literal["cosine", "wsd"], warmup: int, floor: float, decay_fraction: float = 0.3, total: int = 0
    ) -> None:
        self.shape, self.warmup, self.floor, self.decay_fraction = shape, warmup, floor, decay_fraction
        self.total = total  # the last step; 0 until training starts (the peak is used meanwhile)
        self.decay_start: int | None = None  # set by decay_now: the step the decay began at

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if not self.total:
            return 1.0
        if self.shape == "cosine":
            progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
            return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))
        start = self.decay_start if self.decay_start is not None else self.planned_start(self.total)
        if step < start:
            return 1.0
        progress = min(1.0, (step - start) / max(1, self.total - start))
        return self.floor + (1 - self.floor) * (1 - progress)

    def planned_start(self, total: int) -> int:
        """The step at which a wsd run of ``total`` steps begins its decay: never inside the warmup."""
        return total - round(self.decay_fraction * max(0, total - self.warmup))

    def decay_now(self, step: int) -> int | None:
        """Begin the decay at ``step``, lasting ``decay_fraction`` of the shortened run's steps after the warmup, and return the new last step;
        None (nothing changes) during the warmup, or when the decay has begun already or is planned to begin by then.

        A stall right at the end of the warmup ends the run a step later: the shortened run has no steps
        after its warmup to take a share of, and a model that stopped improving during the warmup has
        memorised what it can (its best checkpoint is kept)."""
        planned = self.total and step >= self.planned_start(self.total)
        if step < self.warmup or self.decay_start is not None or planned:
            return None
        self.decay_start = step
        self.total = step + max(1, round((step - self.warmup) * self.decay_fraction / (1 - self.decay_fraction)))
        return self.total

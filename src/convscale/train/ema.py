"""Exponential moving average of the weights, evaluated beside the raw model."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ModelEMA", "ema_decay_at"]


def ema_decay_at(updates: int, decay: float) -> float:
    """The decay after ``updates`` updates, with warm-up: ``min(decay, (1 + n) / (10 + n))``, so that the average is
    not dominated by the random initialization early in a short run."""
    return min(decay, (1 + updates) / (10 + updates))


class ModelEMA:
    """A copy of the model whose floating-point state follows ``ema = d * ema + (1 - d) * model`` after each step;
    buffers that are not floating point (BN's batch counter) are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module, weight: float = 1.0) -> None:
        """One step; ``weight`` > 1 counts a step over a ``weight`` times larger batch as that many steps, so that
        the average spans the same number of images (``d ** weight``)."""
        d = ema_decay_at(self.updates, self.decay) ** weight
        self.updates += 1
        mine, theirs = self.module.state_dict(), model.state_dict()
        floats = [k for k, v in theirs.items() if v.dtype.is_floating_point]
        torch._foreach_lerp_([mine[k] for k in floats], [theirs[k] for k in floats], 1 - d)
        for key, value in theirs.items():
            if not value.dtype.is_floating_point:
                mine[key].copy_(value)

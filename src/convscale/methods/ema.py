"""The exponential moving average of the weights (``--ema``, ``--ema-decay``): its settings, the average itself, and its
hook, which updates it after each step (a larger progressive batch counts as that many steps), validates it as
``ema`` and keeps it in the checkpoint."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..utils.checks import flag, number, setting
from .base import Context, Hook, MethodConfig

if TYPE_CHECKING:
    from ..runs import Checkpoint, TrainConfig, TrainState
    from .progressive import ProgressiveStage

__all__ = ["EMA", "EMAHook", "ModelEMA", "ema_decay_at"]


@dataclass(frozen=True)
class EMA(MethodConfig):
    """``cfg.ema``: whether the run keeps the average, and its decay per step."""

    enabled: bool = setting(True, flag, "keep an exponential moving average of the weights and evaluate it too", "ema")
    decay: float = setting(0.998, number(0, 0.999999), "EMA decay per step", "ema_decay")

    def hook(self, cfg: TrainConfig, ctx: Context) -> Hook | None:
        return EMAHook(ctx.model, self.decay) if self.enabled else None


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


class EMAHook(Hook):
    """The average, updated after each step and validated as ``ema``."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.ema = ModelEMA(model, decay)

    def after_step(self, model: nn.Module, stage: ProgressiveStage, base_batch: int) -> None:
        self.ema.update(model, weight=stage.batch_size / base_batch)  # a larger batch counts as that many steps

    def eval_models(self) -> dict[str, nn.Module]:
        return {"ema": self.ema.module}

    def save(self, state: TrainState) -> dict[str, Any]:
        state.ema_updates = self.ema.updates
        return {"ema": self.ema.module}

    def restore(self, ckpt: Checkpoint) -> None:
        self.ema.module.load_state_dict(ckpt.weights("ema"))
        self.ema.updates = ckpt.state.ema_updates

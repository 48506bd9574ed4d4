"""The named places where a training method joins the loop. A method is a module of pure functions (``ema.py``,
``progressive.py``, ``optim/agc.py``, ``optim/sam.py``, ``distill.py``, ``augment/``) and, when it must act during a
run, a small :class:`Hook`. Before the first step the loop asks every hook to ``describe`` itself (a start-up line),
to contribute the ``loss`` (distillation), to wrap the step's ``gradient`` phase (SAM) and to ``attach`` to the
optimizer (AGC clips there, before each step); during the run it calls ``on_stage`` when a progressive stage starts,
``on_epoch`` when an epoch does, ``after_step`` after each optimizer step, asks ``eval_models`` which models to
validate besides the raw one and ``columns`` what to add to the epoch's metrics row, and ``save``/``restore`` for what
a checkpoint carries. A new method is a new hook and one line where :func:`~convscale.train.loop._hooks` lists the
hooks (fine-tuning's freezing is ``finetune.FreezeHook``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..optim.agc import attach_agc
from .ema import ModelEMA
from .progressive import ProgressiveStage
from .state import Checkpoint, TrainState
from .steps import Gradient, Loss, sam_gradient

__all__ = ["AGCHook", "EMAHook", "Hook", "RegularizationHook", "SAMHook"]


class Hook:
    """A method's place in the run; every event is optional."""

    def describe(self) -> str | None:
        """A start-up line saying what the method does in this run."""
        return None

    def loss(self, loss: Loss | None) -> Loss | None:
        """The step's loss, given the one before (None: cross-entropy with the run's label smoothing)."""
        return loss

    def gradient(self, phase: Gradient) -> Gradient:
        """The step's gradient phase, given the one before (see ``steps.train_step``)."""
        return phase

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Act on the gradients through the optimizer's own hooks (``register_step_pre_hook``)."""

    def columns(self) -> dict[str, Any]:
        """Extra columns of the epoch's metrics row (this process's figures)."""
        return {}

    def on_stage(self, stage: ProgressiveStage) -> None:
        """A stage starts (also when a run resumes inside it)."""

    def on_epoch(self, epoch: int) -> None:
        """Epoch ``epoch`` (from 0) starts or resumes; the model is in training mode."""

    def after_step(self, model: nn.Module, stage: ProgressiveStage, base_batch: int) -> None:
        """An optimizer step was taken on ``model`` (never called for a skipped, non-finite step)."""

    def eval_models(self) -> dict[str, nn.Module]:
        """Models validated beside the raw one, by the name of their metrics columns."""
        return {}

    def save(self, state: TrainState) -> dict[str, Any]:
        """Extra ``write_checkpoint`` keywords; may record counters in ``state``."""
        return {}

    def restore(self, ckpt: Checkpoint) -> None:
        """Take back what ``save`` stored."""


class EMAHook(Hook):
    """The weights' exponential moving average (``ema.py``), updated after each step and validated as ``ema``."""

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


class RegularizationHook(Hook):
    """Each stage's dropout and drop path, set in the model (``progressive.regularization_setter``)."""

    def __init__(self, set_rates: Callable[[float, float], None]) -> None:
        self.set_rates = set_rates

    def on_stage(self, stage: ProgressiveStage) -> None:
        self.set_rates(stage.drop_rate, stage.drop_path_rate)


class SAMHook(Hook):
    """Sharpness-aware minimization (``optim/sam.py``): the gradient taken again at the weights moved by ρ."""

    def __init__(self, rho: float, adaptive: bool, optimizer_name: str) -> None:
        self.rho, self.adaptive, self.optimizer_name = rho, adaptive, optimizer_name

    def describe(self) -> str:
        kind = "ASAM" if self.adaptive else "SAM"
        return f"{kind} around {self.optimizer_name}: rho {self.rho:g} (two passes per step)"

    def gradient(self, phase: Gradient) -> Gradient:
        return sam_gradient(phase, self.rho, self.adaptive)


class AGCHook(Hook):
    """Adaptive gradient clipping (``optim/agc.py``), before each optimizer step, on every weight but the
    classifier's."""

    def __init__(self, params: list[torch.Tensor], clip_factor: float) -> None:
        self.params, self.clip_factor = params, clip_factor

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        attach_agc(optimizer, self.params, self.clip_factor)

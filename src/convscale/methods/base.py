"""What a training method is made of, and the named places where it joins the loop.

A method is one module of this package holding three things: its settings (a frozen :class:`MethodConfig`, nested in
the run's config as ``cfg.<name>``, whose fields also carry the flat keys the CLI and the YAML recipes spell them with),
its arithmetic (pure functions), and its :class:`Hook`. The loop knows only this interface: before the first step it
asks every hook to ``describe`` itself (a start-up line), for per-parameter learning-rate factors
(``lr_scales``: layer decay) and a parameter prefix that gets optimizer groups of its own (``own_groups``), to
contribute the ``loss`` (distillation, BCE), to wrap the step's ``gradient`` phase (SAM) and to ``attach`` to the
optimizer (AGC clips there, before each step); during the run it calls ``on_stage`` when a progressive stage starts,
``on_epoch`` when an epoch does, ``lr_factor`` for each optimizer group at each step (a head-only warm-up holds the
trunk at 0), ``after_step`` after each optimizer step, asks ``eval_models`` which models to validate besides the raw
one and ``columns`` what to add to the epoch's metrics row, and ``save``/``restore`` for what a checkpoint carries.

The step's vocabulary (:data:`Loss`, :class:`StepContext`, :class:`Gradients`, :data:`Gradient`) lives here too,
because a method's arithmetic is written in it; ``train/steps.py`` takes the step with it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..utils.checks import short_repr

if TYPE_CHECKING:
    from ..runs import Checkpoint, TrainConfig, TrainState

__all__ = [
    "Context",
    "Gradient",
    "Gradients",
    "Hook",
    "Loss",
    "MethodConfig",
    "StepContext",
    "all_finite",
    "copy_into",
]

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, images, labels) -> loss


@dataclass
class StepContext:
    """One step's inputs, for the gradient phase and the methods that wrap it (SAM)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    params: list[torch.Tensor]
    buffers: list[torch.Tensor]  # floating-point buffers (BN statistics): a skipped step restores them
    backward: Callable[[], tuple[float, int]]  # forward and backward over the batch: (summed loss, top-1 hits)
    scaler: torch.amp.GradScaler | None = None


@dataclass(frozen=True)
class Gradients:
    loss: float
    correct: int
    finite: bool


Gradient = Callable[[StepContext], Gradients]  # the gradient phase of a step; methods may wrap it (SAM)


def all_finite(total_loss: float, params: Sequence[torch.Tensor]) -> bool:
    """Whether the loss and every gradient are finite."""
    grads = [p.grad for p in params if p.grad is not None]
    # the gradients' total norm is finite exactly when every element is (one fused reduction, one sync)
    return math.isfinite(total_loss) and (not grads or bool(torch.isfinite(torch.nn.utils.get_total_norm(grads))))


@torch.no_grad()
def copy_into(buffers: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> None:
    """Put ``values`` back into ``buffers`` in place (BN statistics a step must not keep)."""
    for b, v in zip(buffers, values, strict=True):
        b.copy_(v)


@dataclass(frozen=True)
class Context:
    """What a method may take from the run when its hook is built: the model (before any wrapping), the data's
    classes, the run's normalization, the device, and ``resolve`` (:func:`convscale.resolve`: how a method loads
    another model, e.g. a teacher)."""

    model: nn.Module
    classes: list[str]
    norm: tuple[tuple[float, ...], tuple[float, ...]]  # the run's (mean, std)
    device: torch.device
    resolve: Callable[..., Any]


class Hook:
    """A method's place in the run; every event is optional."""

    def describe(self) -> str | None:
        """A start-up line saying what the method does in this run."""
        return None

    def lr_scales(self, model: nn.Module) -> dict[str, float] | None:
        """A learning-rate factor per parameter name (layer decay), fixed for the run; None: all 1."""
        return None

    def own_groups(self) -> str | None:
        """A parameter-name prefix whose parameters get optimizer groups of their own, marked ``classifier``."""
        return None

    def loss(self, loss: Loss | None) -> Loss | None:
        """The step's loss, given the one before (None: cross-entropy with the run's label smoothing)."""
        return loss

    def gradient(self, phase: Gradient) -> Gradient:
        """The step's gradient phase, given the one before (see ``train.steps.train_step``)."""
        return phase

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Act on the gradients through the optimizer's own hooks (``register_step_pre_hook``)."""

    def lr_factor(self, group: Mapping[str, Any]) -> float:
        """A factor on an optimizer group's learning rate at this step (a frozen group's is 0)."""
        return 1.0

    def columns(self) -> dict[str, Any]:
        """Extra columns of the epoch's metrics row (this process's figures)."""
        return {}

    def on_stage(self, stage: Any) -> None:  # a methods.progressive.ProgressiveStage (typed loosely: it imports this)
        """A stage starts (also when a run resumes inside it)."""

    def on_epoch(self, epoch: int) -> None:
        """Epoch ``epoch`` (from 0) starts or resumes; the model is in training mode."""

    def after_step(self, model: nn.Module, stage: Any, base_batch: int) -> None:
        """An optimizer step was taken on ``model`` (never called for a skipped, non-finite step)."""

    def eval_models(self) -> dict[str, nn.Module]:
        """Models validated beside the raw one, by the name of their metrics columns."""
        return {}

    def save(self, state: TrainState) -> dict[str, Any]:
        """Extra ``write_checkpoint`` keywords; may record counters in ``state``."""
        return {}

    def restore(self, ckpt: Checkpoint) -> None:
        """Take back what ``save`` stored."""


@dataclass(frozen=True)
class MethodConfig:
    """A method's settings, nested in the run's config. Each field is a :func:`~convscale.utils.checks.setting`
    whose ``flat`` key is how the CLI (``--sam 0.05``), the YAML recipes and a stored run's ``config.yaml`` spell it;
    a bad value is a ValueError naming that key."""

    #: shown in messages about the whole method
    title: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            value = getattr(self, f.name)
            expected = check(value) if check is not None else None
            if expected is not None:
                raise ValueError(f"config key {f.metadata['flat']!r}: expected {expected}, got {short_repr(value)}")

    @classmethod
    def flat_fields(cls) -> list[tuple[str, dataclasses.Field]]:
        """(flat key, field) of each setting, in order."""
        return [(f.metadata["flat"], f) for f in dataclasses.fields(cls)]

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> MethodConfig:
        """The settings from the flat keys present in ``values`` (the others keep their defaults)."""
        return cls(**{f.name: values[key] for key, f in cls.flat_fields() if key in values})

    def to_flat(self) -> dict[str, Any]:
        return {key: getattr(self, f.name) for key, f in self.flat_fields()}

    def check_with(self, cfg: TrainConfig) -> None:
        """Checks that need the rest of the run's config (a ValueError naming the key)."""

    def hook(self, cfg: TrainConfig, ctx: Context) -> Hook | None:
        """The method's hook in this run, or None when the run does not use it."""
        return None

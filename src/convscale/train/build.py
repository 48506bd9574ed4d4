"""What a run is made of, built from its config before the first step: the model (in its published weights' form,
with every dropout and drop-path module the run's stages need), the training methods' hooks, the optimizer (with the
learning-rate factors and groups the hooks ask for) and how each step is taken. The loop (``loop.py``) calls these
and never names a method."""

from __future__ import annotations

import torch
from torch import nn

from ..data.transforms import EvalPolicy
from ..factory import create_model
from ..methods import Context, Hook, build_hooks
from ..methods.progressive import regularizer_ranges
from ..runs import TrainConfig
from ..runs.start import keeps_classifier, model_overrides
from ..source import resolve
from .optimizer import create_optimizer
from .steps import StepSettings, gradient

__all__ = ["build_methods", "build_model", "build_optimizer", "build_step"]


def build_model(cfg: TrainConfig, device: torch.device, classes: list[str], fresh: bool) -> nn.Module:
    """The model, built with the run's largest dropout and drop-path rates so that every module exists (each stage
    sets its own), in its published weights' form; a ``fresh`` run loads them (a resumed one has its checkpoint)."""
    torch.manual_seed(cfg.seed)
    ranges = regularizer_ranges(cfg)
    drop, path = max(ranges["drop_rate"]), max(ranges["drop_path_rate"])
    start = cfg.pretrained if fresh and cfg.pretrained not in (None, False) else None
    model = create_model(
        cfg.model, num_classes=len(classes), drop_rate=drop, drop_path_rate=path, pretrained=start,
        **({} if start is not None else model_overrides(cfg)),
    )  # fmt: skip
    if start is not None and not keeps_classifier(cfg, classes):
        model.reset_classifier(len(classes))  # other classes than the weights': a fresh classifier for the data's
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


def build_methods(
    cfg: TrainConfig, model: nn.Module, classes: list[str], policy: EvalPolicy, device: torch.device
) -> list[Hook]:
    """The hooks of the methods the run uses (:func:`convscale.methods.build_hooks`), given what they may take from
    the run; a method that loads another model (a teacher) reads it through :func:`convscale.resolve`."""
    ctx = Context(model, list(classes), (tuple(policy.mean), tuple(policy.std)), device, resolve)
    return build_hooks(cfg, ctx)


def build_optimizer(cfg: TrainConfig, model: nn.Module, hooks: list[Hook]) -> torch.optim.Optimizer:
    """The optimizer, with the per-parameter learning-rate factors and the groups of their own that the hooks ask for
    (fine-tuning: layer decay, the classifier's groups)."""
    scales, own = None, None
    for hook in hooks:
        scales = hook.lr_scales(model) or scales
        own = hook.own_groups() or own
    return create_optimizer(
        model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum, lr_scales=scales, classifier=own
    )


def build_step(cfg: TrainConfig, hooks: list[Hook], optimizer, scaler) -> StepSettings:
    """How each step is taken: the config's precision and accumulation, and what the methods contribute (a loss, a
    wrapped gradient phase, hooks on the optimizer)."""
    loss, phase = None, gradient
    for hook in hooks:
        loss, phase = hook.loss(loss), hook.gradient(phase)
        hook.attach(optimizer)
    return StepSettings(cfg.amp, scaler, cfg.label_smoothing, cfg.accum_steps, loss, phase)

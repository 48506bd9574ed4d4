"""The training methods a run uses, as hooks: which the config asks for, built in the order the loop calls them. A new
method is its :class:`~.hooks.Hook` (here, or in its own module) and its line below, with its config key in
``config.py``."""

from __future__ import annotations

from torch import nn

from ..optim.agc import agc_parameters
from .config import TrainConfig
from .distill import DistillHook, load_teacher
from .finetune import FreezeHook
from .hooks import AGCHook, EMAHook, Hook, RegularizationHook, SAMHook
from .plan import regularizer_ranges
from .progressive import regularization_setter
from .run import EvalPolicy

__all__ = ["run_hooks"]


def run_hooks(
    cfg: TrainConfig, model: nn.Module, optimizer, classes: list[str], policy: EvalPolicy, device
) -> list[Hook]:
    """The methods that act during this run, each at its named places (``hooks.py``), in the order the loop calls
    them."""
    ranges = regularizer_ranges(cfg)
    hooks: list[Hook] = [RegularizationHook(regularization_setter(model, max(ranges["drop_path_rate"])))]
    if cfg.ema:
        hooks.append(EMAHook(model, cfg.ema_decay))
    if cfg.freeze_epochs or cfg.freeze_bn:
        hooks.append(FreezeHook(model, optimizer, cfg.freeze_epochs, cfg.freeze_bn))
    if cfg.teacher:
        teacher = load_teacher(cfg.teacher, classes, (policy.mean, policy.std), device)
        hooks.append(
            DistillHook(
                teacher, cfg.teacher, cfg.distill_mode, alpha=cfg.distill_alpha, temperature=cfg.temperature,
                smoothing=cfg.label_smoothing,
            )
        )  # fmt: skip
    if cfg.sam is not None:
        hooks.append(SAMHook(cfg.sam, cfg.sam_adaptive, cfg.optimizer))
    if cfg.agc:
        hooks.append(AGCHook(agc_parameters(model), cfg.agc))
    return hooks

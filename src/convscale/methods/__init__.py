"""Training methods, one module each: its settings (nested in the run's config as ``cfg.<name>``), its arithmetic and
its hook (``base.py`` holds the interface). The run's config lists the methods it carries, in the order their hooks
act; :func:`build_hooks` asks each for its hook. A new method is a new module here and one line in
:class:`~convscale.runs.TrainConfig`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Context, Hook, MethodConfig
from .progressive import RegularizationHook

if TYPE_CHECKING:
    from ..runs import TrainConfig

__all__ = ["Context", "Hook", "MethodConfig", "build_hooks"]


def build_hooks(cfg: TrainConfig, ctx: Context) -> list[Hook]:
    """The hooks of the methods this run uses, in the order the loop calls them: each stage's regularization first,
    then each method of the config in its order."""
    hooks: list[Hook] = [RegularizationHook(ctx.model, cfg)]
    for method in cfg.methods():
        hook = method.hook(cfg, ctx)
        if hook is not None:
            hooks.append(hook)
    return hooks

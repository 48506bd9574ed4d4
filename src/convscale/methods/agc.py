"""Adaptive gradient clipping (Brock et al., 2021b, §4): clip each unit's gradient relative to its weight's norm.

For every output unit i (a row of a linear weight, an output filter of a conv), with λ = ``clip_factor``:

    G_i ← λ · max(‖W_i‖, ε) / ‖G_i‖ · G_i    if ‖G_i‖ / max(‖W_i‖, ε) > λ,    else G_i

Vectors and scalars (biases, gains) are one unit each. The final classifier is left out: "it is always better not
to clip the final linear layer" (paper §4.1), so :func:`agc_parameters` drops it by module identity.

Choosing λ (paper §4.1, §5.1, App. D): λ = 0.01 for batch sizes 1024–4096 (every batch-4096 NFNet run uses it);
the best λ grows as the batch shrinks ("λ should be smaller for larger batches"), and the paper's sweep on
NF-ResNets covered 0.01–0.16 at batches 256–4096, so try 0.02–0.16 at a few hundred images per batch.
``--agc λ`` clips every weight of the run's model but the classifier's, before each optimizer step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from ..utils.checks import number, optional, setting
from .base import Context, Hook, MethodConfig

if TYPE_CHECKING:
    from ..runs import TrainConfig

__all__ = ["AGC", "AGCHook", "adaptive_clip_grad_", "agc_parameters", "attach_agc", "unitwise_norm"]


@dataclass(frozen=True)
class AGC(MethodConfig):
    """``cfg.agc``: the clipping factor λ (None: off)."""

    clip_factor: float | None = setting(
        None, optional(number(1e-6, 10)), "adaptive gradient clipping factor, e.g. 0.01 (NFNets)", "agc"
    )

    def hook(self, cfg: TrainConfig, ctx: Context) -> Hook | None:
        return AGCHook(agc_parameters(ctx.model), self.clip_factor) if self.clip_factor else None


def unitwise_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm per output unit: over every dim but the first for weights (kept for broadcasting), whole tensor
    for vectors and scalars."""
    if x.ndim <= 1:
        return torch.linalg.vector_norm(x)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.ndim)), keepdim=True)


@torch.no_grad()
def adaptive_clip_grad_(parameters: Iterable[torch.Tensor], clip_factor: float = 0.01, eps: float = 1e-3) -> None:
    """Clip the ``.grad`` of ``parameters`` in place, unit by unit (see the module docstring)."""
    if clip_factor <= 0 or eps <= 0:
        raise ValueError(f"clip_factor and eps must be > 0, got clip_factor={clip_factor}, eps={eps}")
    for p in parameters:
        if p.grad is None:
            continue
        max_norm = unitwise_norm(p).clamp_(min=eps).mul_(clip_factor)
        grad_norm = unitwise_norm(p.grad)
        scale = (max_norm / grad_norm.clamp(min=1e-6)).clamp_(max=1.0)  # 1 where the unit is under the threshold
        p.grad.mul_(scale)


def _classifier(model: nn.Module) -> nn.Module | None:
    head = getattr(model, "head", None)
    return getattr(head, "fc", None) if head is not None else None


def agc_parameters(model: nn.Module, exclude: nn.Module | Iterable[nn.Module] | None = None) -> list[nn.Parameter]:
    """The parameters to clip: all of ``model``'s but those of the final classifier (``model.head.fc`` for convscale
    models) or of the modules in ``exclude``, matched by identity, wherever they sit in the model."""
    if exclude is None:
        exclude = [m for m in (_classifier(model),) if m is not None]
    elif isinstance(exclude, nn.Module):
        exclude = [exclude]
    skipped = {id(p) for m in exclude for p in m.parameters()}
    return [p for p in model.parameters() if id(p) not in skipped]


def attach_agc(
    optimizer: Optimizer, parameters: Iterable[torch.Tensor], clip_factor: float = 0.01, eps: float = 1e-3
) -> RemovableHandle:
    """Clip ``parameters`` before every ``optimizer.step()``, for any torch optimizer. Returns the hook's handle
    (``.remove()`` detaches it). With a GradScaler, unscale first (``scaler.unscale_(optimizer)``)."""
    params = list(parameters)
    return optimizer.register_step_pre_hook(lambda _opt, _args, _kwargs: adaptive_clip_grad_(params, clip_factor, eps))


class AGCHook(Hook):
    """Clipping before each optimizer step, on every weight but the classifier's."""

    def __init__(self, params: list[torch.Tensor], clip_factor: float) -> None:
        self.params, self.clip_factor = params, clip_factor

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        attach_agc(optimizer, self.params, self.clip_factor)

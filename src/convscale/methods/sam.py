"""Sharpness-aware minimization (Foret et al., 2021) and its adaptive form ASAM (Kwon et al., 2021).

A SAM step, around any optimizer:

    g = ∇L(w);   e = ρ · T² g / ‖T g‖;   g' = ∇L(w + e);   w ← step(w, g')

with T = I for SAM and T = |w| (elementwise) for ASAM; ‖·‖ is the norm over all the parameters together. The
optimizer steps from the original weights with the gradient taken at the perturbed ones. :func:`perturb` moves the
weights and returns copies of the originals, :func:`restore` puts them back exactly (w + e − e would not always be
w in floating point); :func:`sam_gradient` is that step's gradient phase around any other. NFNet-F6 with SAM
(ρ = 0.05 in the paper's setting) is the NFNet paper's best ImageNet result. ``--sam RHO`` turns it on,
``--sam-adaptive`` makes it ASAM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..utils.checks import flag, number, optional, setting
from .base import Context, Gradient, Gradients, Hook, MethodConfig, StepContext, all_finite, copy_into

if TYPE_CHECKING:
    from ..runs import TrainConfig

__all__ = ["SAM", "SAMHook", "perturb", "restore", "sam_gradient"]


@dataclass(frozen=True)
class SAM(MethodConfig):
    """``cfg.sam``: the radius ρ (None: off) and whether the perturbation is ASAM's."""

    rho: float | None = setting(
        None, optional(number(0, 10)), "sharpness-aware minimization with this radius rho (0.05)", "sam"
    )
    adaptive: bool = setting(
        False, flag, "ASAM: the perturbation scaled by |w| (use a larger rho, e.g. 0.5-2)", "sam_adaptive"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rho is None and self.adaptive:
            raise ValueError("config key 'sam_adaptive': ASAM needs a radius (--sam RHO)")

    def check_with(self, cfg: TrainConfig) -> None:
        if self.rho is not None and cfg.amp == "fp16":
            raise ValueError(
                "config key 'sam': SAM with --amp fp16 is not supported (the grad scaler may skip either of SAM's two "
                "passes); use --amp bf16 or none"
            )

    def hook(self, cfg: TrainConfig, ctx: Context) -> Hook | None:
        return SAMHook(self.rho, self.adaptive, cfg.optimizer) if self.rho is not None else None


@torch.no_grad()
def perturb(params: Sequence[torch.Tensor], rho: float, adaptive: bool = False, eps: float = 1e-12):
    """Add e = ρ · T² g / ‖T g‖ to each parameter with a gradient (T = |w| when ``adaptive``); returns the
    original weights (None where a parameter has no gradient). ρ = 0 leaves every weight as it is."""
    scaled = [(p.abs() * p.grad if adaptive else p.grad) if p.grad is not None else None for p in params]
    norms = [s.norm(dtype=torch.promote_types(s.dtype, torch.float32)) for s in scaled if s is not None]
    if not norms:
        return [None] * len(params)
    total = torch.stack(norms).norm()
    factor = rho / (total + eps)
    originals = []
    for p, s in zip(params, scaled, strict=True):
        if s is None:
            originals.append(None)
            continue
        originals.append(p.detach().clone())
        p.add_((p.abs() * s if adaptive else s) * factor.to(p.dtype))
    return originals


@torch.no_grad()
def restore(params: Sequence[torch.Tensor], originals: Sequence[torch.Tensor | None]) -> None:
    """Put back the weights :func:`perturb` moved."""
    for p, w in zip(params, originals, strict=True):
        if w is not None:
            p.copy_(w)


def sam_gradient(inner: Gradient, rho: float, adaptive: bool = False) -> Gradient:
    """SAM's gradient phase around ``inner``: the gradient at the weights moved up ``inner``'s (:func:`perturb`),
    the weights and the BN statistics of the first pass put back exactly."""

    def phase(ctx: StepContext) -> Gradients:
        g = inner(ctx)
        if not g.finite:
            return g
        after_first = [b.clone() for b in ctx.buffers]  # the second pass must not move BN statistics a second time
        originals = perturb(ctx.params, rho, adaptive)
        ctx.optimizer.zero_grad(set_to_none=True)
        ctx.backward()
        restore(ctx.params, originals)
        copy_into(ctx.buffers, after_first)
        return Gradients(g.loss, g.correct, all_finite(g.loss, ctx.params))

    return phase


class SAMHook(Hook):
    """The gradient taken again at the weights moved by ρ."""

    def __init__(self, rho: float, adaptive: bool, optimizer_name: str) -> None:
        self.rho, self.adaptive, self.optimizer_name = rho, adaptive, optimizer_name

    def describe(self) -> str:
        kind = "ASAM" if self.adaptive else "SAM"
        return f"{kind} around {self.optimizer_name}: rho {self.rho:g} (two passes per step)"

    def gradient(self, phase: Gradient) -> Gradient:
        return sam_gradient(phase, self.rho, self.adaptive)

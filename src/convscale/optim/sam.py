"""Sharpness-aware minimization (Foret et al., 2021) and its adaptive form ASAM (Kwon et al., 2021).

A SAM step, around any optimizer:

    g = ∇L(w);   e = ρ · T² g / ‖T g‖;   g' = ∇L(w + e);   w ← step(w, g')

with T = I for SAM and T = |w| (elementwise) for ASAM; ‖·‖ is the norm over all the parameters together. The
optimizer steps from the original weights with the gradient taken at the perturbed ones. :func:`perturb` moves the
weights and returns copies of the originals, :func:`restore` puts them back exactly (w + e − e would not always be
w in floating point). NFNet-F6 with SAM (ρ = 0.05 in the paper's setting) is the
NFNet paper's best ImageNet result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["perturb", "restore"]


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

"""Mixup and CutMix on a batch, on its device, with soft targets (label smoothing folded in).

Mixup (Zhang et al., 2018): ``x = lam * x + (1 - lam) * x[perm]``. CutMix (Yun et al., 2019): a box of ``x[perm]`` is
pasted into ``x``; the box is clipped to the image, so ``lam`` is corrected to the area actually kept. One ``lam``
per batch (the batch is mixed with its own permutation), as in the papers and timm's default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .rng import generator_or_new

__all__ = ["MixResult", "mix_batch", "one_hot_smooth"]


def one_hot_smooth(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """(N,) class indices -> (N, C) targets: ``1 - smoothing`` on the class plus ``smoothing / C`` everywhere."""
    off = smoothing / num_classes
    out = torch.full((labels.numel(), num_classes), off, device=labels.device)
    return out.scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)


@dataclass(frozen=True)
class MixResult:
    images: torch.Tensor
    targets: torch.Tensor  # (N, C), rows sum to 1
    lam: float  # the weight of the original images (for CutMix: the area they keep)
    box: tuple[int, int, int, int] | None  # CutMix's pasted box (y0, y1, x0, x1), or None for mixup


def _cut_box(h: int, w: int, lam: float, gen: torch.Generator) -> tuple[int, int, int, int]:
    ratio = math.sqrt(1 - lam)
    ch, cw = int(h * ratio), int(w * ratio)
    cy = int(torch.randint(h, (1,), generator=gen))
    cx = int(torch.randint(w, (1,), generator=gen))
    return max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)


def _beta(alpha: float, gen: torch.Generator) -> float:
    # Beta(a, a) from two Gammas, drawn with the given generator
    a = torch._standard_gamma(torch.tensor([alpha, alpha], dtype=torch.float64), generator=gen)
    return float(a[0] / a.sum())


def mix_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    switch_prob: float = 0.5,
    label_smoothing: float = 0.0,
    generator: torch.Generator | None = None,
) -> MixResult:
    """Mix a batch with mixup or CutMix (``switch_prob``: the chance of CutMix when both alphas are set). With both
    alphas 0, the images are returned unchanged with smoothed one-hot targets."""
    gen = generator_or_new(generator)
    targets = one_hot_smooth(labels, num_classes, label_smoothing)
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or float(torch.rand(1, generator=gen)) < switch_prob)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    if alpha <= 0:
        return MixResult(images, targets, 1.0, None)
    lam = _beta(alpha, gen)
    perm = torch.randperm(images.shape[0], generator=gen).to(images.device)
    if use_cutmix:
        h, w = images.shape[-2:]
        y0, y1, x0, x1 = _cut_box(h, w, lam, gen)
        images = images.clone()
        images[..., y0:y1, x0:x1] = images[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area the original images keep
        box = (y0, y1, x0, x1)
    else:
        images = images * lam + images[perm] * (1 - lam)
        box = None
    return MixResult(images, targets * lam + targets[perm] * (1 - lam), lam, box)

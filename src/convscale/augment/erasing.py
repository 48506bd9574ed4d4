"""Random erasing (Zhong et al., 2020) on a batch: with probability ``prob`` each image gets one rectangle of
``area`` (a fraction of the image) and aspect ratio in ``ratio`` filled with per-pixel Gaussian noise (timm's
"pixel" mode), in the images' normalized space."""

from __future__ import annotations

import math

import torch

from .rng import generator_or_new

__all__ = ["random_erasing"]


def random_erasing(
    x: torch.Tensor,
    prob: float = 0.25,
    *,
    area: tuple[float, float] = (0.02, 1 / 3),
    ratio: tuple[float, float] = (0.3, 3.3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A copy of ``x`` (N, C, H, W) with rectangles erased; images keep their own boxes."""
    if not 0 <= prob <= 1:
        raise ValueError(f"random erasing prob must be in [0, 1], got {prob}")
    gen = generator_or_new(generator)
    out = x.clone()
    n, c, h, w = x.shape
    for i in range(n):
        if float(torch.rand(1, generator=gen)) >= prob:
            continue
        for _ in range(10):  # a box that fits
            target = h * w * float(torch.empty(1).uniform_(*area, generator=gen))
            aspect = math.exp(float(torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)))
            bh, bw = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < bh < h and 0 < bw < w:
                top = int(torch.randint(h - bh + 1, (1,), generator=gen))
                left = int(torch.randint(w - bw + 1, (1,), generator=gen))
                noise = torch.randn(c, bh, bw, generator=gen).to(x.device, x.dtype)
                out[i, :, top : top + bh, left : left + bw] = noise
                break
    return out

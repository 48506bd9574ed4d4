"""RandAugment (Cubuk et al., 2020) on a batch, on its device: each image draws its own ``n`` ops; every op's strength
follows one magnitude ``m`` (10 is each op's usual maximum; larger values, as EfficientNetV2's 15-25, extrapolate
and are clamped to the op's valid range). Images are floats in [0, 1], (N, 3, H, W).

Ops: identity, auto-contrast, brightness, contrast, colour (saturation), sharpness, solarize, posterize, rotate,
shear x/y, translate x/y. Geometric ops fill with mid-grey. Equalize is left out: it needs a per-image histogram.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .rng import generator_or_new

__all__ = ["OPS", "apply_op", "rand_augment"]

OPS = (
    "identity",
    "auto_contrast",
    "brightness",
    "contrast",
    "color",
    "sharpness",
    "solarize",
    "posterize",
    "rotate",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
_GREY = 0.5


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``other + factor * (x - other)``: factor 1 is the identity, 0 gives ``other``."""
    return (other + factor.view(-1, 1, 1, 1) * (x - other)).clamp_(0, 1)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # grid_sample fills with 0; sample (x - grey) and add grey back so the border is mid-grey
    return (F.grid_sample(x - _GREY, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + _GREY).clamp_(
        0, 1
    )


def _pixel_op(name: str, x: torch.Tensor, level: float, sign: torch.Tensor) -> torch.Tensor:
    """The ops that change pixel values in place: contrast and colour, solarize, posterize."""
    if name == "auto_contrast":
        lo = x.amin(dim=(2, 3), keepdim=True)
        hi = x.amax(dim=(2, 3), keepdim=True)
        return torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-6), x)
    if name == "solarize":
        threshold = max(0.0, 1.0 - level)
        return torch.where(x >= threshold, 1 - x, x)
    if name == "posterize":
        bits = max(1, 8 - round(4 * level))
        step = 2 ** (8 - bits)
        return torch.floor(x * 255 / step) * step / 255
    factor = (1 + sign * 0.9 * level).clamp_min(0)  # brightness, contrast, color, sharpness: a blend
    if name == "brightness":
        return _blend(x, torch.zeros_like(x), factor)
    if name == "contrast":
        return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x), factor)
    if name == "color":
        return _blend(x, _gray(x), factor)
    kernel = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=x.dtype, device=x.device) / 13
    smooth = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel.expand(3, 1, 3, 3), groups=3)
    return _blend(x, smooth, factor)


def _theta(name: str, x: torch.Tensor, level: float, sign: torch.Tensor) -> torch.Tensor:
    """The (N, 2, 3) affine matrix of a geometric op: rotate, shear or translate."""
    theta = torch.zeros(x.shape[0], 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    if name == "rotate":
        angle = sign * math.radians(30) * level
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle), -torch.sin(angle)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle), torch.cos(angle)
    elif name == "shear_x":
        theta[:, 0, 1] = sign * min(0.3 * level, 1.0)
    elif name == "shear_y":
        theta[:, 1, 0] = sign * min(0.3 * level, 1.0)
    elif name == "translate_x":
        theta[:, 0, 2] = sign * min(0.45 * level, 1.0) * 2  # affine_grid spans [-1, 1]: 2 is the image width
    else:  # translate_y
        theta[:, 1, 2] = sign * min(0.45 * level, 1.0) * 2
    return theta


_PIXEL_OPS = ("auto_contrast", "brightness", "contrast", "color", "sharpness", "solarize", "posterize")


def apply_op(name: str, x: torch.Tensor, magnitude: float, sign: torch.Tensor) -> torch.Tensor:
    """Op ``name`` at ``magnitude`` on every image of ``x``; ``sign`` (N,) of ±1 picks each image's direction."""
    if name not in OPS:
        raise ValueError(f"unknown RandAugment op {name!r}; the ops are {', '.join(OPS)}")
    level = magnitude / 10.0
    if name == "identity":
        return x
    if name in _PIXEL_OPS:
        return _pixel_op(name, x, level, sign)
    return _affine(x, _theta(name, x, level, sign))


def rand_augment(
    x: torch.Tensor, n: int = 2, magnitude: float = 9.0, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """RandAugment(n, m): for each of ``n`` rounds every image draws one op (uniformly) and a direction."""
    if n < 0 or magnitude < 0:
        raise ValueError(f"RandAugment needs n >= 0 and magnitude >= 0, got n={n}, magnitude={magnitude}")
    gen = generator_or_new(generator)
    out = x
    for _ in range(n):
        choice = torch.randint(len(OPS), (x.shape[0],), generator=gen).to(x.device)
        sign = (torch.randint(2, (x.shape[0],), generator=gen) * 2 - 1).to(x.device, x.dtype)
        result = out.clone()
        for k, name in enumerate(OPS):
            idx = (choice == k).nonzero().flatten()
            if idx.numel() and name != "identity":
                result[idx] = apply_op(name, out[idx], magnitude, sign[idx])
        out = result
    return out

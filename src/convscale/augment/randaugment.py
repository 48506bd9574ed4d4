"""RandAugment (Cubuk et al., 2020) on a batch, on its device: each image draws its own ``n`` ops; every op's strength
follows one magnitude ``m`` (10 is each op's usual maximum; larger values, as EfficientNetV2's 15-25, extrapolate
and are clamped to the op's valid range). Images are floats in [0, 1], (N, 3, H, W).

Two op lists (``OP_SETS``): "paper", the paper's 14 (identity, auto-contrast, equalize, brightness, contrast, colour,
sharpness, solarize, posterize, rotate, shear x/y, translate x/y), and "timm", the 15 of timm's ``rand-…-inc1``
strings, for a recipe that must match a timm run: no identity, invert and solarize-add added, and posterize keeping
4 − ⌊0.4·m⌋ bits (1 at m 9) instead of the paper's 8 − 0.4·m (4 at m 9). Geometric ops fill with mid-grey.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .rng import generator_or_new

__all__ = ["OPS", "OP_SETS", "apply_op", "rand_augment"]

OPS = (
    "identity",
    "auto_contrast",
    "equalize",
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
TIMM_OPS = (
    "auto_contrast",
    "equalize",
    "invert",
    "rotate",
    "posterize_increasing",
    "solarize",
    "solarize_add",
    "color",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
OP_SETS = {"paper": OPS, "timm": TIMM_OPS}
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


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalization of each image's channels, as PIL's ``ImageOps.equalize``: the 256 levels mapped through
    the channel's cumulative histogram, spread evenly over the levels below its top one."""
    n, c, h, w = x.shape
    levels = (x * 255).round_().long().reshape(n * c, h * w)
    offsets = torch.arange(n * c, device=x.device).view(-1, 1) * 256
    hist = torch.bincount((levels + offsets).flatten(), minlength=n * c * 256).view(n * c, 256)
    top = 255 - (hist > 0).flip(1).int().argmax(dim=1, keepdim=True)  # the highest level present
    step = (h * w - hist.gather(1, top)) // 255
    below = hist.cumsum(1) - hist  # pixels under each level
    lut = ((step // 2 + below) // step.clamp_min(1)).clamp_(max=255)
    keep = (step == 0).expand_as(lut)  # one level only, or too few pixels below the top: unchanged
    lut = torch.where(keep, torch.arange(256, device=x.device).expand_as(lut), lut)
    return (lut.gather(1, levels).view(n, c, h, w).to(x.dtype) / 255).clamp_(0, 1)


def _pixel_op(name: str, x: torch.Tensor, level: float, sign: torch.Tensor) -> torch.Tensor:
    """The ops that change pixel values, not their places: tone, colour, sharpness, solarize, posterize, equalize."""
    if name == "equalize":
        return _equalize(x)
    if name == "invert":
        return 1 - x
    if name == "solarize_add":  # timm's: levels under 128 raised by up to 110
        add = min(128, int(110 * level)) / 255
        return torch.where(x < 127.5 / 255, (x + add).clamp_(max=1), x)
    if name == "posterize_increasing":  # timm's inc1: 4 bits at magnitude 0, 0 at 10
        bits = 4 - int(4 * min(level, 1.0))
        step = 2 ** (8 - bits)
        return torch.floor(x * 255 / step) * step / 255
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
    h, w = x.shape[-2:]
    theta = torch.zeros(x.shape[0], 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    if name == "rotate":
        angle = sign * math.radians(30) * level
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle), -torch.sin(angle)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle), torch.cos(angle)
    elif name == "shear_x":  # about the top-left corner, as the paper's code, timm and torchvision shear
        theta[:, 0, 1] = theta[:, 0, 2] = sign * min(0.3 * level, 1.0) * h / w
    elif name == "shear_y":
        theta[:, 1, 0] = theta[:, 1, 2] = sign * min(0.3 * level, 1.0) * w / h
    elif name == "translate_x":
        theta[:, 0, 2] = sign * min(0.45 * level, 1.0) * 2  # affine_grid spans [-1, 1]: 2 is the image width
    else:  # translate_y
        theta[:, 1, 2] = sign * min(0.45 * level, 1.0) * 2
    return theta


_PIXEL_OPS = (
    "auto_contrast", "equalize", "invert", "brightness", "contrast", "color", "sharpness", "solarize", "solarize_add",
    "posterize", "posterize_increasing",
)  # fmt: skip
_ALL_OPS = frozenset(OPS) | frozenset(TIMM_OPS)


def apply_op(name: str, x: torch.Tensor, magnitude: float, sign: torch.Tensor) -> torch.Tensor:
    """Op ``name`` at ``magnitude`` on every image of ``x``; ``sign`` (N,) of ±1 picks each image's direction."""
    if name not in _ALL_OPS:
        raise ValueError(f"unknown RandAugment op {name!r}; the ops are {', '.join(sorted(_ALL_OPS))}")
    level = magnitude / 10.0
    if name == "identity":
        return x
    if name in _PIXEL_OPS:
        return _pixel_op(name, x, level, sign)
    return _affine(x, _theta(name, x, level, sign))


def rand_augment(
    x: torch.Tensor,
    n: int = 2,
    magnitude: float = 9.0,
    *,
    ops: str = "paper",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """RandAugment(n, m): for each of ``n`` rounds every image draws one op of ``OP_SETS[ops]`` (uniformly) and a
    direction."""
    if n < 0 or magnitude < 0:
        raise ValueError(f"RandAugment needs n >= 0 and magnitude >= 0, got n={n}, magnitude={magnitude}")
    if ops not in OP_SETS:
        raise ValueError(f"RandAugment ops must be one of {', '.join(OP_SETS)}, got {ops!r}")
    names = OP_SETS[ops]
    gen = generator_or_new(generator)
    out = x
    for _ in range(n):
        choice = torch.randint(len(names), (x.shape[0],), generator=gen).to(x.device)
        sign = (torch.randint(2, (x.shape[0],), generator=gen) * 2 - 1).to(x.device, x.dtype)
        result = out.clone()
        for k, name in enumerate(names):
            idx = (choice == k).nonzero().flatten()
            if idx.numel() and name != "identity":
                result[idx] = apply_op(name, out[idx], magnitude, sign[idx])
        out = result
    return out

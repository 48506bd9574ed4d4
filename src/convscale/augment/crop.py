"""Random-resized crop and flip on a batch, on its device: every image its own crop box, one output size for all.

Resizing is separable, so each image's crop-and-resize is two small matrix products, ``Wy @ x @ Wx^T``, whose rows
hold the resampling filter centred on each output pixel; the whole batch goes through one batched matmul. When an
axis shrinks, the filter is stretched by the shrink factor (antialiasing), as PIL and ``F.interpolate(...,
antialias=True)`` do it; a flip reverses the rows of ``Wx``. Boxes are (x0, y0, x1, y1) in pixels, fractional allowed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["flip_mask", "resize_weights", "resized_crop", "sample_boxes"]

KERNELS = ("bilinear", "bicubic")


def _kernel(t: torch.Tensor, kind: str) -> torch.Tensor:
    t = t.abs()
    if kind == "bilinear":
        return (1 - t).clamp_(min=0)
    a = -0.5  # PIL's (and antialiased F.interpolate's) bicubic
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t < 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def resize_weights(start: torch.Tensor, length: torch.Tensor, size_in: int, size_out: int, kernel: str = "bicubic"):
    """(N, size_out, size_in) matrices taking the interval [start, start + length) of an axis of ``size_in`` pixels
    to ``size_out`` pixels. Source pixels outside the axis are dropped and each row renormalized (edge handling as
    PIL's)."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    start, length = start.double(), length.double()
    scale = length / size_out  # source pixels per output pixel
    stretch = scale.clamp(min=1.0)[:, None, None]  # the filter widens when the axis shrinks
    out_pos = torch.arange(size_out, dtype=torch.float64, device=start.device) + 0.5
    centres = start[:, None] + out_pos[None] * scale[:, None]  # (N, out), in source pixel coordinates
    src_pos = torch.arange(size_in, dtype=torch.float64, device=start.device) + 0.5
    w = _kernel((src_pos[None, None] - centres[:, :, None]) / stretch, kernel)
    return (w / w.sum(-1, keepdim=True)).float()


def resized_crop(
    x: torch.Tensor, boxes: torch.Tensor | None, size: int, flip: torch.Tensor | None = None, kernel: str = "bicubic"
) -> torch.Tensor:
    """(N, C, H, W) images -> (N, C, size, size) floats: each image's ``boxes[i]`` resized, then mirrored where
    ``flip[i]``. ``boxes`` None: every image whole, which is one antialiased ``F.interpolate`` for the batch (the
    same result, less work; none at all when the size is already right). Bicubic overshoot is not clamped; clamp to
    the data's range if it matters."""
    n, _, h, w = x.shape
    if boxes is None:
        x = x.float()
        if (h, w) != (size, size):
            x = F.interpolate(x, size=(size, size), mode=kernel, antialias=True, align_corners=False)
        return x if flip is None else torch.where(flip.to(x.device).view(n, 1, 1, 1), x.flip(-1), x)
    if boxes.shape != (n, 4):
        raise ValueError(f"boxes must be (N, 4) = ({n}, 4), got {tuple(boxes.shape)}")
    boxes = boxes.to(x.device)
    wy = resize_weights(boxes[:, 1], boxes[:, 3] - boxes[:, 1], h, size, kernel)
    wx = resize_weights(boxes[:, 0], boxes[:, 2] - boxes[:, 0], w, size, kernel)
    if flip is not None:
        wx = torch.where(flip.to(x.device)[:, None, None], wx.flip(1), wx)
    x = x.float()
    return wy[:, None] @ x @ wx.transpose(1, 2)[:, None]


def sample_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    attempts: int = 10,
) -> torch.Tensor:
    """(n, 4) Inception-style crop boxes: area a ``scale`` share of the image, aspect log-uniform in ``ratio``, the
    first of ``attempts`` draws that fits; if none fits, the centre square (as :class:`TrainTransform` does)."""
    area = height * width
    target = area * torch.empty(n, attempts, dtype=torch.float64).uniform_(*scale, generator=generator)
    log_ratio = torch.empty(n, attempts, dtype=torch.float64).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=generator
    )
    w, h = (target * log_ratio.exp()).sqrt(), (target / log_ratio.exp()).sqrt()
    fits = (w <= width) & (h <= height)
    first = fits.double().argmax(1, keepdim=True)  # the first fitting attempt (0 when none fits)
    w, h = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    side = float(min(width, height))
    none = ~fits.any(1)
    w, h = torch.where(none, side, w), torch.where(none, side, h)
    u = torch.rand(n, 2, dtype=torch.float64, generator=generator)
    x0 = torch.where(none, (width - side) / 2, u[:, 0] * (width - w))
    y0 = torch.where(none, (height - side) / 2, u[:, 1] * (height - h))
    return torch.stack([x0, y0, x0 + w, y0 + h], 1)


def flip_mask(n: int, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n,) booleans, each true with probability ``p``."""
    return torch.rand(n, generator=generator) < p

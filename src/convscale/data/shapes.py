"""``synthetic-shapes``: the built-in dataset. Ten shape classes drawn procedurally, no files, no download.

Image ``i`` of a split is a pure function of ``(seed, split, i)``: the same on every machine, in every worker, after
every resume. The label is the shape (``i % 10``, so classes are balanced); everything else is nuisance that a model
must learn to ignore: the shape's colour, size (40-80% of the image), rotation and position; a textured background
(gradient, stripes or blotches) in other colours; clutter (lines and small blobs) in front of and behind the shape;
pixel noise. Drawn at twice the resolution and downsampled, so edges are antialiased.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SHAPE_CLASSES", "InMemoryImages", "SyntheticShapes", "render_all"]

SHAPE_CLASSES = (
    "circle",
    "ring",
    "half-disk",
    "triangle",
    "square",
    "pentagon",
    "l-shape",
    "star",
    "cross",
    "arrow",
)
_SPLITS = {"train": 0, "val": 1}
_DEFAULT_SIZE = {"train": 10_000, "val": 2_000}


def _polygon(points: list[tuple[float, float]], cx: float, cy: float, r: float, angle: float) -> list[tuple]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in points]


def _regular(n: int) -> list[tuple[float, float]]:
    return [(math.cos(2 * math.pi * k / n), math.sin(2 * math.pi * k / n)) for k in range(n)]


def _star(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    out = []
    for k in range(2 * points):
        r = 1.0 if k % 2 == 0 else inner
        a = math.pi * k / points
        out.append((r * math.cos(a), r * math.sin(a)))
    return out


_OUTLINES = {
    "triangle": _regular(3),
    "square": _regular(4),
    "pentagon": _regular(5),
    "l-shape": [(-0.8, -1), (-0.2, -1), (-0.2, 0.4), (0.8, 0.4), (0.8, 1), (-0.8, 1)],
    "star": _star(),
    "cross": [
        (-0.3, -1),
        (0.3, -1),
        (0.3, -0.3),
        (1, -0.3),
        (1, 0.3),
        (0.3, 0.3),
        (0.3, 1),
        (-0.3, 1),
        (-0.3, 0.3),
        (-1, 0.3),
        (-1, -0.3),
        (-0.3, -0.3),
    ],
    "arrow": [(-1, -0.25), (0.2, -0.25), (0.2, -0.65), (1, 0), (0.2, 0.65), (0.2, 0.25), (-1, 0.25)],
    "half-disk": [(math.cos(a), math.sin(a)) for a in np.linspace(0, math.pi, 24)],
}


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _luma(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _far_colour(rng: np.random.Generator, avoid: tuple[int, int, int], contrast: float = 80) -> tuple[int, int, int]:
    """A random colour whose luminance differs from ``avoid``'s by at least ``contrast``: the shape stays visible."""
    for _ in range(50):
        c = _colour(rng)
        if abs(_luma(c) - _luma(avoid)) >= contrast:
            return c
    return (255, 255, 255) if _luma(avoid) < 128 else (0, 0, 0)


def _background(rng: np.random.Generator, size: int) -> tuple[Image.Image, tuple[int, int, int]]:
    a = np.array(_colour(rng), np.float32)
    b = np.clip(a + rng.normal(0, 50, 3), 0, 255).astype(np.float32)  # a texture of nearby colours
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = rng.integers(3)  # gradient, low-contrast stripes or blotches
    theta = rng.uniform(0, math.pi)
    proj = xx * math.cos(theta) + yy * math.sin(theta)
    if kind == 0:  # linear gradient
        t = proj - proj.min()
        t /= max(float(t.max()), 1e-6)
    elif kind == 1:  # stripes
        t = 0.5 + 0.25 * np.sin(2 * math.pi * rng.uniform(2, 7) * proj)
    else:  # blotches: a few smooth bumps
        t = np.zeros((size, size), np.float32)
        for _ in range(4):
            cx, cy, w = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.3)
            t += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * w * w))
        t /= max(float(t.max()), 1e-6)
    img = a * (1 - t[..., None]) + b * t[..., None]
    mean = tuple(int(v) for v in img.reshape(-1, 3).mean(0))
    return Image.fromarray(img.astype(np.uint8)), mean


def _clutter(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: int, count: int) -> None:
    for _ in range(count):
        colour = _colour(rng)
        if rng.random() < 0.5:
            x0, y0, x1, y1 = rng.uniform(0, size, 4)
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, max(2, size // 40) + 1)))
        else:
            r = rng.uniform(0.02, 0.05) * size
            cx, cy = rng.uniform(0, size, 2)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)


def render_shape(label: int, rng: np.random.Generator, res: int) -> Image.Image:
    """One image of class ``label`` at ``res`` × ``res``, its nuisance drawn from ``rng``."""
    size = 2 * res  # supersampled, then downsampled with antialiasing
    img, bg_mean = _background(rng, size)
    draw = ImageDraw.Draw(img)
    _clutter(draw, rng, size, int(rng.integers(1, 4)))
    r = rng.uniform(0.2, 0.4) * size  # the shape spans 40-80% of the image
    cx, cy = rng.uniform(r, size - r, 2)
    angle = rng.uniform(0, 2 * math.pi)
    fill = _far_colour(rng, bg_mean)
    name = SHAPE_CLASSES[label]
    box = [cx - r, cy - r, cx + r, cy + r]
    if name == "circle":
        draw.ellipse(box, fill=fill)
    elif name == "ring":
        draw.ellipse(box, outline=fill, width=max(2, int(r * rng.uniform(0.25, 0.4))))
    else:
        draw.polygon(_polygon(_OUTLINES[name], cx, cy, r, angle), fill=fill)
    if rng.random() < 0.3:
        _clutter(draw, rng, size, 1)  # sometimes in front of the shape too
    img = img.resize((res, res), Image.Resampling.LANCZOS)
    sigma = rng.uniform(0, 8)
    if sigma > 1:
        noisy = np.asarray(img, np.float32) + rng.normal(0, sigma, (res, res, 3))
        img = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    return img


class SyntheticShapes:
    """The ``synthetic-shapes`` split ``split`` ("train" or "val"): ``size`` images of ``res`` px (PIL, RGB) and
    their labels. ``dataset[i]`` is deterministic in ``(seed, split, i)``."""

    classes = SHAPE_CLASSES

    def __init__(self, split: str = "train", *, size: int | None = None, res: int = 32, seed: int = 0) -> None:
        if split not in _SPLITS:
            raise ValueError(f"synthetic-shapes split must be 'train' or 'val', got {split!r}")
        size = _DEFAULT_SIZE[split] if size is None else size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"synthetic-shapes size must be a positive integer, got {size!r}")
        if isinstance(res, bool) or not isinstance(res, int) or res < 16:
            raise ValueError(f"synthetic-shapes res must be an integer >= 16, got {res!r}")
        self.split, self.size, self.res, self.seed = split, size, res, seed
        self.targets = [i % len(SHAPE_CLASSES) for i in range(size)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} images")
        label = self.targets[index]
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], index])
        return render_shape(label, rng, self.res), label


class InMemoryImages:
    """Images held as one uint8 array (N, H, W, 3) with their labels: a rendered split, drawn once per run instead
    of once per epoch."""

    def __init__(self, pixels: np.ndarray, targets: list[int], classes: tuple[str, ...]) -> None:
        self.pixels, self.targets, self.classes = pixels, targets, classes

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.pixels[index]), self.targets[index]


def _render_batch(batch: list[tuple[Image.Image, int]]) -> np.ndarray:
    return np.stack([np.asarray(img) for img, _ in batch])


def render_all(dataset: SyntheticShapes, workers: int = 0) -> InMemoryImages:
    """Render every image of ``dataset`` (in ``workers`` processes) into memory."""
    from torch.utils.data import DataLoader

    from .loader import DieWithParent

    loader = DataLoader(
        dataset, batch_size=256, num_workers=workers, collate_fn=_render_batch,
        worker_init_fn=DieWithParent() if workers else None,
    )  # fmt: skip
    pixels = np.concatenate(list(loader))
    return InMemoryImages(pixels, list(dataset.targets), dataset.classes)

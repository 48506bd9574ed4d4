"""Per-image transforms on PIL images, without torchvision: random-resized crop and flip for training, resize and
centre crop for evaluation. Randomness comes from an explicit generator, so an image's augmentation is a function of
(seed, epoch, index) and a resumed run sees exactly what an uninterrupted one would."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..augment.crop import sample_boxes
from ..augment.normalize import IMAGENET_MEAN, IMAGENET_STD, normalize

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "EvalTransform", "TrainTransform", "normalize", "to_tensor", "to_uint8"]


def to_tensor(img: Image.Image, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, normalized."""
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def to_uint8(img: Image.Image, rng: np.random.Generator | None = None) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) uint8, unchanged (the training device converts and augments)."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


@dataclass(frozen=True)
class TrainTransform:
    """Inception-style random-resized crop (area ``scale``, aspect ``ratio``) to ``res``, then a horizontal flip with
    probability ``flip``; bicubic resampling, which PIL antialiases when it downscales."""

    res: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    normalize: bool = True

    def crop_box(self, width: int, height: int, rng: np.random.Generator) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): the device's :func:`~convscale.augment.sample_boxes` rule, drawn from ``rng``."""
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        return tuple(sample_boxes(1, height, width, self.scale, self.ratio, generator=gen)[0].tolist())

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        box = self.crop_box(*img.size, rng)
        img = img.resize((self.res, self.res), Image.Resampling.BICUBIC, box=box)
        if rng.random() < self.flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if not self.normalize:
            return to_uint8(img)
        return to_tensor(img)


INTERPOLATIONS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class EvalTransform:
    """Resize the short side to ``res / crop_pct`` (``interpolation``, antialiased when it shrinks), centre-crop
    ``res`` (``crop_pct`` 1: the whole image), normalize with ``mean`` and ``std``."""

    res: int
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> torch.Tensor:
        short = round(self.res / self.crop_pct)
        w, h = img.size
        scale = short / min(w, h)
        size = (max(self.res, round(w * scale)), max(self.res, round(h * scale)))
        img = img.resize(size, INTERPOLATIONS[self.interpolation])
        w, h = img.size
        left, top = (w - self.res) // 2, (h - self.res) // 2
        return to_tensor(img.crop((left, top, left + self.res, top + self.res)), self.mean, self.std)

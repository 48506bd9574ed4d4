"""Per-image transforms on PIL images, without torchvision: random-resized crop and flip for training, resize and
centre crop for evaluation. Randomness comes from an explicit generator, so an image's augmentation is a function of
(seed, epoch, index) and a resumed run sees exactly what an uninterrupted one would."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..augment.crop import sample_boxes
from ..augment.normalize import IMAGENET_MEAN, IMAGENET_STD, normalize

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EvalPolicy",
    "EvalTransform",
    "TrainTransform",
    "normalize",
    "to_tensor",
    "to_uint8",
]


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
CROP_MODES = ("center", "squash")


@dataclass(frozen=True)
class EvalTransform:
    """timm's and torchvision's evaluation transform, to the pixel: resize to ``floor(res / crop_pct)`` (``center``:
    the short side, the long side truncated in proportion; ``squash``: both sides, DeepMind's NFNet evaluation) with
    ``interpolation`` (PIL's, antialiased when it shrinks), centre-crop ``res`` (the offset rounded half to even, as
    torchvision's ``CenterCrop``), normalize with ``mean`` and ``std``. ``crop_pct`` 1: the whole short side."""

    res: int
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_mode: str = "center"

    def __post_init__(self) -> None:
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {', '.join(CROP_MODES)}, got {self.crop_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")

    def resized(self, width: int, height: int) -> tuple[int, int]:
        """The size an image of ``width`` × ``height`` is resized to before the centre crop."""
        scale = math.floor(self.res / self.crop_pct)
        if self.crop_mode == "squash":
            return scale, scale
        if width <= height:
            return scale, int(scale * height / width)
        return int(scale * width / height), scale

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> torch.Tensor:
        img = img.resize(self.resized(*img.size), INTERPOLATIONS[self.interpolation])
        w, h = img.size
        left, top = round((w - self.res) / 2.0), round((h - self.res) / 2.0)
        return to_tensor(img.crop((left, top, left + self.res, top + self.res)), self.mean, self.std)


@dataclass(frozen=True)
class EvalPolicy:
    """How a model's images are evaluated: the sizes, the centre crop, resampling and normalization."""

    train_res: int
    test_res: int
    crop_pct: float  # 1.0: the whole image (synthetic scenes); 0.875: photos, the usual centre crop
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_mode: str = "center"

    def transform(self, res: int | None = None) -> EvalTransform:
        """The eval transform at ``res`` (default: the test size)."""
        return EvalTransform(
            res or self.test_res, self.crop_pct, self.interpolation, self.mean, self.std, self.crop_mode
        )

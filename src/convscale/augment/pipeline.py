"""The training batch's way through augmentation, on its device: uint8 images from the loader in, an augmented,
normalized float batch and its targets out.

Random-resized crop (when the loader sent whole images) and flip, resized to the stage's size and antialiased;
RandAugment; normalization; mixup / CutMix (soft targets, label smoothing folded in); random erasing. The random
draws follow from a seed (the run's seed, epoch and batch), so a resumed run repeats them; per-image draws are made
for the whole global batch and this process's share taken, so that N processes augment each image as one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .crop import flip_mask, resized_crop, sample_boxes
from .erasing import random_erasing
from .mix import mix_batch
from .normalize import IMAGENET_MEAN, IMAGENET_STD, normalize
from .randaugment import rand_augment

__all__ = ["AugmentSettings", "BatchShare", "augment_batch"]


@dataclass(frozen=True)
class AugmentSettings:
    """What one stage of a run does to its batches; ``from_config`` reads them from a (stage's) training config."""

    size: int  # output size
    crop_scale: float | None  # smallest crop area when the loader sent whole images; None: it sent crops
    randaug_n: int = 0
    randaug_m: float = 0.0
    randaug_ops: str = "paper"  # RandAugment's op list: "paper" or "timm" (randaugment.OP_SETS)
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_switch_prob: float = 0.5
    label_smoothing: float = 0.0
    random_erasing: float = 0.0
    mean: tuple[float, float, float] = IMAGENET_MEAN  # the normalization the model expects (pretrained weights')
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def from_config(
        cls, cfg: Any, size: int, crop_scale: float | None, mean=IMAGENET_MEAN, std=IMAGENET_STD
    ) -> AugmentSettings:
        keys = (
            "randaug_n", "randaug_m", "randaug_ops", "mixup", "cutmix", "mixup_switch_prob", "label_smoothing",
            "random_erasing",
        )  # fmt: skip
        return cls(size, crop_scale, **{k: getattr(cfg, k) for k in keys}, mean=tuple(mean), std=tuple(std))


@dataclass(frozen=True)
class BatchShare:
    """This process's slice of a global batch: ``rank``'s ``per_rank`` images of ``world`` processes."""

    rank: int = 0
    per_rank: int = 0
    world: int = 1


def augment_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    settings: AugmentSettings,
    num_classes: int,
    *,
    seed: tuple[int, ...],
    share: BatchShare,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, 3, H, W) and labels (N,) -> the float batch and its targets (labels, or (N, C) soft targets)."""
    s = settings
    gen = torch.Generator().manual_seed(int(np.random.default_rng(list(seed)).integers(2**62)))
    n, _, h, w = x.shape
    everyone = max(share.per_rank, n) * share.world
    mine = slice(share.rank * share.per_rank, share.rank * share.per_rank + n)
    boxes = sample_boxes(everyone, h, w, (s.crop_scale, 1.0), generator=gen)[mine] if s.crop_scale else None
    flips = flip_mask(everyone, 0.5, generator=gen)[mine]
    x = resized_crop(x, boxes, s.size, flips).div_(255).clamp_(0, 1)
    if s.randaug_n and s.randaug_m > 0:
        x = rand_augment(x, s.randaug_n, s.randaug_m, ops=s.randaug_ops, generator=gen)
    x = normalize(x, s.mean, s.std)
    if s.mixup > 0 or s.cutmix > 0:
        mixed = mix_batch(
            x,
            y,
            num_classes,
            mixup_alpha=s.mixup,
            cutmix_alpha=s.cutmix,
            switch_prob=s.mixup_switch_prob,
            label_smoothing=s.label_smoothing,
            generator=gen,
        )
        x, y = mixed.images, mixed.targets
    if s.random_erasing > 0:
        x = random_erasing(x, s.random_erasing, generator=gen)
    return x, y

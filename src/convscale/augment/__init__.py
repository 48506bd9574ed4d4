"""Batched augmentation on the training device: random-resized crop and flip, RandAugment, mixup/CutMix with soft
targets, random erasing. Each is a pure function of its batch and a ``torch.Generator``, so a run is reproducible
under its seed."""

from .crop import flip_mask, resize_weights, resized_crop, sample_boxes
from .erasing import random_erasing
from .mix import MixResult, mix_batch, one_hot_smooth
from .normalize import IMAGENET_MEAN, IMAGENET_STD, normalize
from .pipeline import AugmentSettings, BatchShare, augment_batch
from .randaugment import OP_SETS, OPS, apply_op, rand_augment

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OPS",
    "OP_SETS",
    "AugmentSettings",
    "BatchShare",
    "MixResult",
    "apply_op",
    "augment_batch",
    "flip_mask",
    "mix_batch",
    "normalize",
    "one_hot_smooth",
    "rand_augment",
    "random_erasing",
    "resize_weights",
    "resized_crop",
    "sample_boxes",
]

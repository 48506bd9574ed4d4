"""Batched augmentation on the training device: RandAugment, mixup/CutMix with soft targets, random erasing. Each
is a pure function of its batch and a ``torch.Generator``, so a run is reproducible under its seed."""

from .erasing import random_erasing
from .mix import MixResult, mix_batch, one_hot_smooth
from .randaugment import OPS, apply_op, rand_augment

__all__ = ["OPS", "MixResult", "apply_op", "mix_batch", "one_hot_smooth", "rand_augment", "random_erasing"]

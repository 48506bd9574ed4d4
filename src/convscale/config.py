"""Typed variant data shared by every family: defaults a variant carries next to its architecture."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["OPTIMIZERS", "ModelConfig", "Published", "Recipe"]


@dataclass(frozen=True)
class Published:
    """What the paper (or the official repository) reports for a variant.

    ``gflops`` follows the papers' usage: billions of multiply-adds. ``note`` says where the numbers come from.
    """

    top1: float | None
    params_m: float | None
    gflops: float | None
    note: str = ""


#: optimizer names, in the trainer's vocabulary: SGD with Nesterov momentum, AdamW, RMSProp with TF's epsilon
OPTIMIZERS = ("sgd", "adamw", "rmsprop")


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """The paper's training recipe for a variant, as data, in the trainer's vocabulary (its field names are
    ``TrainConfig`` keys). The recipes shipped for ``convscale train --recipe`` are checked against it
    (``convscale.runs.recipes.recipe_differences``), so the paper's numbers live here once.

    ``lr`` is the peak learning rate at ``batch_size`` images per step; scale it linearly for other batch sizes.
    """

    optimizer: str  # one of OPTIMIZERS
    lr: float
    batch_size: int
    weight_decay: float
    epochs: int
    warmup_epochs: float
    schedule: str  # "cosine", "step", "exponential" (convscale train runs warm-up + cosine)
    min_lr: float = 0.0
    ema_decay: float | None = None
    label_smoothing: float = 0.0
    mixup: float = 0.0  # alpha
    cutmix: float = 0.0  # alpha
    randaugment: str | None = None  # timm-style spec, e.g. "rand-m9-mstd0.5-inc1" (n defaults to 2, as in timm)
    random_erasing: float = 0.0
    source: str = ""

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"recipe optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")

    def randaug(self) -> tuple[int, float, str] | None:
        """RandAugment's (ops per image, magnitude, op list) from the spec, or None: timm's ``inc1`` strings name
        timm's op list ("timm"), others the paper's. (timm's ``mstd``, a magnitude drawn per op, is not followed.)"""
        if not self.randaugment:
            return None
        parts = dict(re.fullmatch(r"([a-z]+)([\d.]*)", p).groups() for p in self.randaugment.split("-")[1:])
        return int(parts.get("n", 2)), float(parts["m"]), "timm" if parts.get("inc") == "1" else "paper"


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Fields every family's config has: resolutions, regularization defaults and the published numbers."""

    train_res: int = 224
    test_res: int = 224
    drop_rate: float = 0.0  # dropout before the classifier
    drop_path_rate: float = 0.0  # stochastic depth, rising linearly over the blocks up to this value
    published: Published | None = None
    recipe: Recipe | None = None

    def stage_rows(self) -> list[dict[str, object]]:
        """The stage table as the model is built (after any scaling), one dict per stage; for ``convscale info``."""
        return []

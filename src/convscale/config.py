"""Typed variant data shared by every family: defaults a variant carries next to its architecture."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelConfig", "Published", "Recipe"]


@dataclass(frozen=True)
class Published:
    """What the paper (or the official repository) reports for a variant.

    ``gflops`` follows the papers' usage: billions of multiply-adds. ``note`` says where the numbers come from.
    """

    top1: float | None
    params_m: float | None
    gflops: float | None
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """The paper's training recipe for a variant, as data (the training issues read it).

    ``lr`` is the peak learning rate at ``batch_size`` images per step; scale it linearly for other batch sizes.
    """

    optimizer: str  # "sgd", "adamw", "rmsprop_tf"
    lr: float
    batch_size: int
    weight_decay: float
    epochs: int
    warmup_epochs: float
    schedule: str  # "cosine", "step", "exponential"
    min_lr: float = 0.0
    ema_decay: float | None = None
    label_smoothing: float = 0.0
    mixup: float = 0.0  # alpha
    cutmix: float = 0.0  # alpha
    randaugment: str | None = None  # timm-style spec, e.g. "rand-m9-mstd0.5-inc1"
    random_erasing: float = 0.0
    source: str = ""


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

"""Progressive learning with adaptive regularization (EfficientNetV2 §4.2): training is cut into M stages; the image
size and every regularizer (dropout, drop path, RandAugment magnitude, mixup alpha) grow together from their first
to their last value, stage by stage. A pure function of its settings: the loop only asks which stage an epoch is in.

Two variants (PAPERS.md §2.4):

- ``"paper"`` (the default, Algorithm 1): stage ``i`` of ``M`` uses ``S0 + (Se - S0) * i / (M - 1)``, and so for each
  regularizer: the first stage trains at the minimum values, the last at the maximum.
- ``"official"`` (the AutoML code): the size uses ``ratio = (i + 1) / M``, so the first stage is already above ``S0``
  (V2-S: 171, 214, 257, 300); RandAugment and mixup are ``linspace(start, end, M)``; the dropout schedule is computed
  and discarded there, so dropout and drop path stay at their final values.

Stage ``i`` spans epochs ``[floor(i * E / M), floor((i + 1) * E / M))``, as the official code cuts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "ProgressiveConfig",
    "ProgressiveStage",
    "format_schedule",
    "progressive_schedule",
    "regularization_setter",
]

VARIANTS = ("paper", "official")


@dataclass(frozen=True)
class ProgressiveStage:
    index: int
    start_epoch: int  # first epoch of the stage (0-based)
    end_epoch: int  # one past its last epoch
    image_size: int
    drop_rate: float
    drop_path_rate: float
    randaug_magnitude: float
    mixup_alpha: float
    cutmix_alpha: float
    batch_size: int
    lr_scale: float  # learning-rate multiplier that goes with ``batch_size`` (linear scaling)


@dataclass(frozen=True)
class ProgressiveConfig:
    """(first, last) value of each quantity; ``multiple``: sizes are rounded to it (8; 32 suits ``torch.compile``).
    ``constant_memory``: a larger batch at the small sizes, ``batch * (Se / Si)^2`` (a multiple of 8), and the
    learning rate scaled with it."""

    stages: int = 4
    image_size: tuple[int, int] = (128, 300)
    drop_rate: tuple[float, float] = (0.1, 0.3)
    drop_path_rate: tuple[float, float] = (0.2, 0.2)
    randaug_magnitude: tuple[float, float] = (5.0, 15.0)
    mixup_alpha: tuple[float, float] = (0.0, 0.0)
    cutmix_alpha: tuple[float, float] = (0.0, 0.0)
    variant: str = "paper"
    multiple: int = 8
    constant_memory: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.stages, bool) or not isinstance(self.stages, int) or self.stages < 1:
            raise ValueError(f"progressive stages must be an integer >= 1, got {self.stages!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"progressive variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if not isinstance(self.multiple, int) or self.multiple < 1:
            raise ValueError(f"progressive multiple must be a positive integer, got {self.multiple!r}")
        for key in ("image_size", "drop_rate", "drop_path_rate", "randaug_magnitude", "mixup_alpha", "cutmix_alpha"):
            pair = getattr(self, key)
            if not (
                isinstance(pair, tuple | list) and len(pair) == 2 and all(isinstance(v, int | float) for v in pair)
            ):
                raise ValueError(f"progressive {key} must be a (first, last) pair of numbers, got {pair!r}")
            if min(pair) < 0:
                raise ValueError(f"progressive {key} must not be negative, got {pair!r}")
        if min(self.image_size) < 32:
            raise ValueError(f"progressive image_size must be at least 32 px, got {self.image_size!r}")
        for key in ("drop_rate", "drop_path_rate"):
            if max(getattr(self, key)) >= 1:
                raise ValueError(f"progressive {key} must be below 1, got {getattr(self, key)!r}")


def _lerp(pair: tuple[float, float], t: float) -> float:
    return pair[0] + (pair[1] - pair[0]) * t


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, multiple * round(value / multiple))


def progressive_schedule(cfg: ProgressiveConfig, epochs: int, batch_size: int) -> list[ProgressiveStage]:
    """The stages of a run of ``epochs`` epochs at base ``batch_size`` (the batch of the last, largest stage)."""
    m = cfg.stages
    if epochs < m:
        raise ValueError(f"progressive learning needs at least one epoch per stage: {m} stages, {epochs} epochs")
    stages = []
    for i in range(m):
        t = i / (m - 1) if m > 1 else 1.0  # position between first and last values (a single stage: the last)
        size_t = t if cfg.variant == "paper" else (i + 1) / m
        size = _round_to(_lerp(cfg.image_size, size_t), cfg.multiple)
        drop, drop_path = _lerp(cfg.drop_rate, t), _lerp(cfg.drop_path_rate, t)
        if cfg.variant == "official":  # the official code discards its dropout schedule
            drop, drop_path = cfg.drop_rate[1], cfg.drop_path_rate[1]
        batch, lr_scale = batch_size, 1.0
        if cfg.constant_memory:
            final = _round_to(cfg.image_size[1], cfg.multiple)
            batch = max(batch_size, 8 * math.floor(batch_size * (final / size) ** 2 / 8))
            lr_scale = batch / batch_size
        stages.append(
            ProgressiveStage(
                index=i,
                start_epoch=(i * epochs) // m,
                end_epoch=((i + 1) * epochs) // m,
                image_size=size,
                drop_rate=round(drop, 6),
                drop_path_rate=round(drop_path, 6),
                randaug_magnitude=round(_lerp(cfg.randaug_magnitude, t), 6),
                mixup_alpha=round(_lerp(cfg.mixup_alpha, t), 6),
                cutmix_alpha=round(_lerp(cfg.cutmix_alpha, t), 6),
                batch_size=batch,
                lr_scale=lr_scale,
            )
        )
    return stages


def format_schedule(stages: list[ProgressiveStage]) -> str:
    """The schedule as the table printed before training."""
    lines = [
        f"{'stage':>5s} {'epochs':>9s} {'size':>5s} {'dropout':>7s} {'drop path':>9s} {'RandAug':>7s} "
        f"{'mixup':>5s} {'cutmix':>6s} {'batch':>5s} {'lr x':>5s}"
    ]
    for s in stages:
        lines.append(
            f"{s.index + 1:5d} {f'{s.start_epoch + 1}-{s.end_epoch}':>9s} {s.image_size:5d} {s.drop_rate:7.3f} "
            f"{s.drop_path_rate:9.3f} {s.randaug_magnitude:7.2f} {s.mixup_alpha:5.2f} {s.cutmix_alpha:6.2f} "
            f"{s.batch_size:5d} {s.lr_scale:5.2f}"
        )
    return "\n".join(lines)


def regularization_setter(model, built_drop_path_rate: float):
    """A function ``set(drop_rate, drop_path_rate)`` that changes ``model``'s classifier dropout and every block's
    drop path in place, keeping the per-block rule the model was built with (its rates rise with depth). The model
    must have been built with the largest rates of the run, so that the dropout and drop-path modules exist."""
    from torch import nn

    from ..layers.drop import DropPath

    paths = [m for m in model.modules() if isinstance(m, DropPath)]
    shares = [m.drop_prob / built_drop_path_rate if built_drop_path_rate else 0.0 for m in paths]
    head = getattr(model, "head", model)
    dropouts = [m for m in head.modules() if isinstance(m, nn.Dropout)]

    def set_rates(drop_rate: float, drop_path_rate: float) -> None:
        for m, share in zip(paths, shares, strict=True):
            m.drop_prob = share * drop_path_rate
        for m in dropouts:
            m.p = drop_rate

    return set_rates

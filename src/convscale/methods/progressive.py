"""Progressive learning with adaptive regularization (EfficientNetV2 §4.2): training is cut into M stages; the image
size and every regularizer (dropout, drop path, RandAugment magnitude, mixup alpha) grow together from their first
to their last value, stage by stage. A pure function of its settings: the loop only asks which stage an epoch is in.

Two variants (docs/papers.md §2.4):

- ``"paper"`` (the default, Algorithm 1): stage ``i`` of ``M`` uses ``S0 + (Se - S0) * i / (M - 1)``, and so for each
  regularizer: the first stage trains at the minimum values, the last at the maximum.
- ``"official"`` (the AutoML code): the size uses ``ratio = (i + 1) / M``, so the first stage is already above ``S0``
  (V2-S: 171, 214, 257, 300); RandAugment and mixup are ``linspace(start, end, M)``; the dropout schedule is computed
  and discarded there, so dropout and drop path stay at their final values.

Stage ``i`` spans epochs ``[floor(i * E / M), floor((i + 1) * E / M))``, as the official code cuts them.

Every regularizer that can grow is one row of :data:`REGULARIZERS`. The training config's keys (``KEY`` and
``KEY_start``), their validation, the printed table, the metrics columns and the plot all come from that row, and a
stage hands its values to the rest of the run as a config of its own (:meth:`ProgressiveStage.apply`): making another
regularizer progressive is a row here and a ``KEY_start`` field in ``TrainConfig``. Its hook,
:class:`RegularizationHook`, sets each stage's dropout and drop path in the model; the stages' sizes, batches and
learning-rate factors are the loop's plan (``train/plan.py``). Its keys stay top-level config keys (``stages``,
``size_start``, ``drop_rate_start``...): the stage plan, the augmentation and the model read them too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..factory import model_info
from .base import Hook

if TYPE_CHECKING:
    from ..runs import TrainConfig

__all__ = [
    "REGULARIZERS",
    "ProgressiveConfig",
    "ProgressiveStage",
    "RegularizationHook",
    "Regularizer",
    "format_schedule",
    "progressive_schedule",
    "regularization_setter",
    "regularizer_ranges",
]

VARIANTS = ("paper", "official")


@dataclass(frozen=True)
class Regularizer:
    """A quantity that grows over the stages. ``name``: its keyword in :class:`ProgressiveConfig` and attribute of a
    stage; ``key``: the training config's key of its last value (the first is ``key + "_start"``) and its metrics
    column; ``bounds``: allowed values, ``low <= v < high`` when ``open_high``, else ``low <= v <= high``."""

    name: str
    key: str
    label: str  # its column title in the printed schedule
    bounds: tuple[float, float]
    default: tuple[float, float]  # (first, last) when a ProgressiveConfig names none: EfficientNetV2-S's, Table 6
    open_high: bool = False
    model_default: bool = False  # a last value of None in the training config means the model's own
    fixed_in_official: bool = False  # the official code keeps it at its last value
    active_if: str | None = None  # a config key that switches it on; while that key is 0 its column shows 0
    plot_scale: float = 1.0

    def check(self, what: str, value: Any) -> None:
        lo, hi = self.bounds
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and lo <= value and (value < hi if self.open_high else value <= hi)
        if not ok:
            top = f"{hi})" if self.open_high else f"{hi}]"
            raise ValueError(f"{what}: expected a number in [{lo}, {top}, got {value!r}")


REGULARIZERS: tuple[Regularizer, ...] = (
    Regularizer("drop_rate", "drop_rate", "dropout", (0, 1), (0.1, 0.3), True, True, True),
    Regularizer("drop_path_rate", "drop_path_rate", "drop path", (0, 1), (0.2, 0.2), True, True, True),
    Regularizer(
        "randaug_magnitude", "randaug_m", "RandAug", (0, 100), (5.0, 15.0), active_if="randaug_n", plot_scale=0.1
    ),
    Regularizer("mixup_alpha", "mixup", "mixup", (0, 100), (0.0, 0.0)),
    Regularizer("cutmix_alpha", "cutmix", "cutmix", (0, 100), (0.0, 0.0)),
)


@dataclass(frozen=True)
class ProgressiveStage:
    index: int
    start_epoch: int  # first epoch of the stage (0-based)
    end_epoch: int  # one past its last epoch
    image_size: int
    batch_size: int
    lr_scale: float  # learning-rate multiplier that goes with ``batch_size`` (linear scaling)
    values: Mapping[str, float]  # each regularizer's value in this stage, by name

    def __getattr__(self, name: str) -> float:  # stage.mixup_alpha, stage.drop_rate, ...
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def apply(self, config):
        """``config`` (a dataclass such as ``TrainConfig``) with this stage's value at each regularizer's key."""
        return dataclasses.replace(config, **{r.key: self.values[r.name] for r in REGULARIZERS})

    def columns(self, config=None) -> dict[str, float]:
        """This stage's metrics columns: each regularizer's value under its config key."""
        return {
            r.key: 0.0
            if config is not None and r.active_if and not getattr(config, r.active_if)
            else self.values[r.name]
            for r in REGULARIZERS
        }


class ProgressiveConfig:
    """(first, last) value of the image size and of each regularizer (keywords: :data:`REGULARIZERS`' names);
    ``multiple``: sizes are rounded to it (8; 32 suits ``torch.compile``). ``constant_memory``: a larger batch at the
    small sizes, ``batch * (Se / Si)^2`` (a multiple of 8), and the learning rate scaled with it."""

    def __init__(
        self,
        *,
        stages: int = 4,
        image_size: tuple[int, int] = (128, 300),
        variant: str = "paper",
        multiple: int = 8,
        constant_memory: bool = False,
        **ranges: tuple[float, float],
    ) -> None:
        if isinstance(stages, bool) or not isinstance(stages, int) or stages < 1:
            raise ValueError(f"progressive stages must be an integer >= 1, got {stages!r}")
        if variant not in VARIANTS:
            raise ValueError(f"progressive variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
            raise ValueError(f"progressive multiple must be a positive integer, got {multiple!r}")
        unknown = sorted(set(ranges) - {r.name for r in REGULARIZERS})
        if unknown:
            raise ValueError(f"progressive learning has no {unknown[0]!r}; it grows {', '.join(_names())}")
        _check_pair("image_size", image_size)
        if min(image_size) < 32:
            raise ValueError(f"progressive image_size must be at least 32 px, got {image_size!r}")
        self.ranges: dict[str, tuple[float, float]] = {}
        for r in REGULARIZERS:
            pair = ranges.get(r.name, r.default)
            _check_pair(r.name, pair)
            for value in pair:
                r.check(f"progressive {r.name} {tuple(pair)!r}", value)
            self.ranges[r.name] = (pair[0], pair[1])
        self.stages, self.image_size, self.variant = stages, (image_size[0], image_size[1]), variant
        self.multiple, self.constant_memory = multiple, constant_memory


def _names() -> list[str]:
    return [r.name for r in REGULARIZERS]


def _check_pair(name: str, pair: Any) -> None:
    ok = isinstance(pair, tuple | list) and len(pair) == 2
    if not (ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)):
        raise ValueError(f"progressive {name} must be a (first, last) pair of numbers, got {pair!r}")
    if min(pair) < 0:
        raise ValueError(f"progressive {name} must not be negative, got {pair!r}")


def _lerp(pair: tuple[float, float], t: float) -> float:
    return pair[0] + (pair[1] - pair[0]) * t


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, multiple * round(value / multiple))


def _stage_values(cfg: ProgressiveConfig, t: float) -> dict[str, float]:
    values = {}
    for r in REGULARIZERS:
        pair = cfg.ranges[r.name]
        values[r.name] = round(pair[1] if cfg.variant == "official" and r.fixed_in_official else _lerp(pair, t), 6)
    return values


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
                batch_size=batch,
                lr_scale=lr_scale,
                values=MappingProxyType(_stage_values(cfg, t)),
            )
        )
    return stages


def format_schedule(stages: list[ProgressiveStage]) -> str:
    """The schedule as the table printed before training: stage, epochs, size, each regularizer, batch, lr x."""
    widths = [max(5, len(r.label)) for r in REGULARIZERS]
    head = " ".join(f"{r.label:>{w}s}" for r, w in zip(REGULARIZERS, widths, strict=True))
    lines = [f"{'stage':>5s} {'epochs':>9s} {'size':>5s} {head} {'batch':>5s} {'lr x':>5s}"]
    for s in stages:
        cells = " ".join(f"{s.values[r.name]:{w}.3f}" for r, w in zip(REGULARIZERS, widths, strict=True))
        epochs = f"{s.start_epoch + 1}-{s.end_epoch}"
        lines.append(f"{s.index + 1:5d} {epochs:>9s} {s.image_size:5d} {cells} {s.batch_size:5d} {s.lr_scale:5.2f}")
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


def regularizer_ranges(cfg: TrainConfig) -> dict[str, tuple[float, float]]:
    """(first, last) value of each progressive regularizer: the last is the config's (or, where it is None, the
    model's own), the first its ``*_start`` (None: the same as the last)."""
    own = model_info(cfg.model).config
    ranges = {}
    for r in REGULARIZERS:
        last = getattr(cfg, r.key)
        if last is None:
            last = getattr(own, r.key)
        first = getattr(cfg, r.key + "_start")
        ranges[r.name] = (last if first is None else first, last)
    return ranges


class RegularizationHook(Hook):
    """Each stage's dropout and drop path, set in the model (:func:`regularization_setter`)."""

    def __init__(self, model, cfg: TrainConfig) -> None:
        self.set_rates = regularization_setter(model, max(regularizer_ranges(cfg)["drop_path_rate"]))

    def on_stage(self, stage: ProgressiveStage) -> None:
        self.set_rates(stage.drop_rate, stage.drop_path_rate)

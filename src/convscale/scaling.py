"""Compound scaling (EfficientNet, Tan & Le 2019, §3.3): depth, width and resolution grow together.

``compound(phi)`` gives the rule's multipliers d = α^φ, w = β^φ, r = γ^φ. The released B1–B7 use hand-rounded
coefficients instead of exact powers (TPU code ``efficientnet_params``); the registry uses those so that the published
weights load, and :func:`scaled_config` builds any base model at any (width, depth, resolution).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TypeVar

from .config import ModelConfig
from .layers.helpers import make_divisible

__all__ = ["ScalingMultipliers", "compound", "round_filters", "round_repeats", "scaled_config"]

C = TypeVar("C", bound=ModelConfig)


@dataclass(frozen=True)
class ScalingMultipliers:
    depth: float
    width: float
    resolution: float

    @property
    def flops_factor(self) -> float:
        """How much the FLOPs grow: about d·w²·r² (≈ 2^φ with the paper's α, β, γ)."""
        return self.depth * self.width**2 * self.resolution**2


def compound(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> ScalingMultipliers:
    """The compound scaling rule: depth α^φ, width β^φ, resolution γ^φ, with α·β²·γ² ≈ 2 (paper §3.3)."""
    for label, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if value < 1:
            raise ValueError(f"{label} must be >= 1 (the paper constrains α, β, γ >= 1), got {value}")
    return ScalingMultipliers(depth=alpha**phi, width=beta**phi, resolution=gamma**phi)


def round_filters(channels: int, width: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Channels × width, rounded to a multiple of ``divisor`` (TPU ``round_filters``; V2 uses ``round_limit=0``)."""
    return make_divisible(channels * width, divisor, round_limit=round_limit)


def round_repeats(repeats: int, depth: float) -> int:
    """Blocks in a stage after depth scaling: ceil(depth × repeats) (TPU ``round_repeats``)."""
    return math.ceil(depth * repeats)


def scaled_config(
    config: C, *, width: float = 1.0, depth: float = 1.0, resolution: int | None = None, phi: float | None = None
) -> C:
    """``config`` (a family config with ``width_mult``/``depth_mult``) scaled further by width, depth, resolution.

    With ``phi``, the multipliers come from :func:`compound` and resolution is the base's × γ^φ rounded to 8.
    The multipliers compose with the config's own, so scaling ``efficientnet_b0`` gives the B-family rule.
    """
    if not all(hasattr(config, f) for f in ("width_mult", "depth_mult")):
        raise TypeError(f"{type(config).__name__} has no width_mult/depth_mult: this family is not compound-scaled")
    if phi is not None:
        m = compound(phi)
        width, depth = m.width, m.depth
        resolution = resolution or int(round(config.train_res * m.resolution / 8) * 8)
    if width <= 0 or depth <= 0:
        raise ValueError(f"width and depth multipliers must be > 0, got width={width}, depth={depth}")
    # the published numbers describe the unscaled variant, so they do not carry over
    changes = dict(width_mult=config.width_mult * width, depth_mult=config.depth_mult * depth, published=None)  # type: ignore[attr-defined]
    if resolution is not None:
        if resolution < 32:
            raise ValueError(f"resolution must be >= 32 px, got {resolution}")
        changes.update(train_res=resolution, test_res=resolution)
    return dataclasses.replace(config, **changes)

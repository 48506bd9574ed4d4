"""The two search spaces, as data.

**Compound scaling** (EfficientNet §3.3, step 1): depth α, width β, resolution γ on a grid of ``step``, each ≥ 1,
with α·β²·γ² within ``tolerance`` of the target (the paper: ≈ 2) — :func:`scaling_grid`; a point scales the base by
:func:`scale` (depth × α, width × β, size × γ), and the family of step 2 by α^φ, β^φ, γ^φ (:func:`family`).

**Stages** (EfficientNetV2 §3.2 / MnasNet): per stage of an MBConv-family table, the block (MBConv or Fused-MBConv),
expansion (1, 4, 6), kernel (3, 5) and layer count (the base's ± 1, at least 1); output widths and strides stay the
base's. A row keeps its squeeze-excite while its block is the base's; a row turned into MBConv gets SE ratio 0.25 and
one turned into Fused-MBConv none, as in EfficientNetV2's tables. The base's own choices give the base itself.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from dataclasses import dataclass

from ..models.efficientnet import EfficientNetConfig, MBStage
from ..scaling import compound, scaled_config

__all__ = [
    "ScalePoint",
    "StageChoice",
    "apply_choices",
    "base_choices",
    "family",
    "scale",
    "scaling_grid",
    "stage_options",
]

BLOCKS = ("mbconv", "fused")
EXPANSIONS = (1.0, 4.0, 6.0)
KERNELS = (3, 5)
SE_RATIO = 0.25


@dataclass(frozen=True, order=True)
class ScalePoint:
    """Depth, width and resolution multipliers (α, β, γ)."""

    alpha: float
    beta: float
    gamma: float

    @property
    def flops_factor(self) -> float:
        return self.alpha * self.beta**2 * self.gamma**2

    def label(self) -> str:
        return f"a{self.alpha:.2f}-b{self.beta:.2f}-g{self.gamma:.2f}"


def scaling_grid(target: float = 2.0, step: float = 0.05, tolerance: float = 0.05, top: float | None = None):
    """Every (α, β, γ) on the grid {1, 1 + step, …} with |α·β²·γ² − target| ≤ tolerance · target (EfficientNet's
    FLOPs constraint). ``top`` bounds each multiplier (default: the target, since each one alone may use it all)."""
    if not target > 1.0:
        raise ValueError(f"the scaling target must be > 1 (the base is 1), got {target}")
    if not 0.0 < step <= 1.0:
        raise ValueError(f"the grid step must be in (0, 1], got {step}")
    values = _axis(step, top or target)
    grid = [ScalePoint(a, b, g) for a, b, g in itertools.product(values, repeat=3)]
    return [p for p in grid if abs(p.flops_factor - target) <= tolerance * target]


def _axis(step: float, top: float) -> list[float]:
    return [round(1.0 + i * step, 6) for i in range(math.floor((top - 1.0) / step + 1e-9) + 1)]


def scale(cfg: EfficientNetConfig, res: int, point: ScalePoint) -> tuple[EfficientNetConfig, int]:
    """The base ``cfg`` at ``res`` scaled by ``point``: depth × α, width × β (``scaling.scaled_config``'s rounding),
    image size × γ (rounded to an integer, at least 32)."""
    size = max(32, round(res * point.gamma))
    return scaled_config(cfg, width=point.beta, depth=point.alpha, resolution=size), size


def family(
    cfg: EfficientNetConfig, res: int, point: ScalePoint, phis: range
) -> list[tuple[int, EfficientNetConfig, int]]:
    """Step 2: the base scaled by α^φ, β^φ, γ^φ for each φ (``scaling.compound`` with the found coefficients)."""
    out = []
    for phi in phis:
        m = compound(phi, point.alpha, point.beta, point.gamma)
        out.append((phi, *scale(cfg, res, ScalePoint(m.depth, m.width, m.resolution))))
    return out


@dataclass(frozen=True, order=True)
class StageChoice:
    """One stage's setting in the stage search."""

    block: str
    expand: float
    kernel: int
    repeats: int

    def label(self) -> str:
        return f"{'F' if self.block == 'fused' else 'M'}{self.expand:g}k{self.kernel}x{self.repeats}"


def base_choices(cfg: EfficientNetConfig) -> tuple[StageChoice, ...]:
    return tuple(StageChoice(s.block, float(s.expand), s.kernel, s.repeats) for s in cfg.stages)


def stage_options(cfg: EfficientNetConfig, stage: int) -> list[StageChoice]:
    """Every choice for one stage: 2 blocks × 3 expansions × 2 kernels × the base's repeats − 1, +0, +1."""
    base = cfg.stages[stage].repeats
    counts = sorted({max(1, base + d) for d in (-1, 0, 1)})
    return [StageChoice(*c) for c in itertools.product(BLOCKS, EXPANSIONS, KERNELS, counts)]


def apply_choices(cfg: EfficientNetConfig, choices: tuple[StageChoice, ...]) -> EfficientNetConfig:
    """``cfg`` with each stage set to its choice (widths, strides and the rest of the row kept); the base's own
    choices give back ``cfg`` itself."""
    if len(choices) != len(cfg.stages):
        raise ValueError(f"{len(choices)} stage choices for a table of {len(cfg.stages)} stages")
    return dataclasses.replace(cfg, stages=tuple(_row(s, c) for s, c in zip(cfg.stages, choices, strict=True)))


def _row(s: MBStage, c: StageChoice) -> MBStage:
    """A row keeps its own squeeze-excite while its block is the base's (MobileNetV3 has SE in some stages only,
    MobileNetV2 in none); a row turned into the other block gets that block's ratio in EfficientNetV2's tables.
    Explicit middle widths (AsymmNet's) stay only with the base's own expansion."""
    se = s.se_ratio if c.block == s.block else (SE_RATIO if c.block == "mbconv" else 0.0)
    mid = s.mid_chs if (c.block, c.expand) == (s.block, float(s.expand)) else 0
    return dataclasses.replace(
        s, block=c.block, expand=c.expand, kernel=c.kernel, repeats=c.repeats, se_ratio=se, mid_chs=mid
    )


def random_choices(cfg: EfficientNetConfig, rng: random.Random) -> tuple[StageChoice, ...]:
    return tuple(rng.choice(stage_options(cfg, i)) for i in range(len(cfg.stages)))


def is_mbconv_family(cfg: object) -> bool:
    return isinstance(cfg, EfficientNetConfig) and all(isinstance(s, MBStage) for s in cfg.stages)

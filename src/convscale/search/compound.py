"""EfficientNet's compound-scaling search (§3.3), on the user's device and data.

Step 1: the grid of (α, β, γ) that meets the constraint — the paper's α·β²·γ² ≈ target (``gmacs``), or the scaled
network's latency predicted from this device's table within a tolerance of target × the base's (``latency``: one
forward at ``batch``; ``train-step``: forward + backward) — is thinned to ``max_candidates`` spread over it; each is
trained by a short proxy run, and the most accurate is kept (ties: the faster measured). Step 2: the base scaled by
α^φ, β^φ, γ^φ for φ = 1…K, written as architecture files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arch import write_arch
from ..models.efficientnet import EfficientNetConfig
from .latency import LatencyTable, Setting
from .proxy import DEFAULT_PROXY, Candidate, ProxyRun, is_main_rank, measure_rows, run_candidates
from .report import figures, finish_search
from .space import ScalePoint, family, scale, scaling_grid

__all__ = ["CONSTRAINTS", "ScalingSearch", "search_scaling"]

CONSTRAINTS = ("gmacs", "latency", "train-step")


@dataclass(frozen=True)
class ScalingSearch:
    """What ``convscale search scaling`` asks for."""

    base: str
    res: int
    constraint: str = "gmacs"
    target: float = 2.0
    step: float = 0.05
    tolerance: float = 0.05
    phis: int = 3
    max_candidates: int = 6
    batch: int = 1  # latency constraints: the batch they are measured at

    def __post_init__(self) -> None:
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"constraint must be one of {', '.join(CONSTRAINTS)}, got {self.constraint!r}")
        if not 0 < self.tolerance < 1:
            raise ValueError(f"tolerance must be in (0, 1), got {self.tolerance}")
        if self.max_candidates < 1 or self.phis < 0:
            raise ValueError("max_candidates must be >= 1 and phi >= 0")

    @property
    def setting(self) -> Setting:
        return Setting(batch=self.batch, mode="train" if self.constraint == "train-step" else "eval")


def constrained_grid(
    s: ScalingSearch, cfg: EfficientNetConfig, table: LatencyTable | None
) -> list[tuple[ScalePoint, float]]:
    """The grid points meeting the constraint, each with its cost relative to the base (FLOPs factor or predicted
    latency ratio). ValueError when none does."""
    if s.constraint == "gmacs":
        points = [(p, p.flops_factor) for p in scaling_grid(s.target, s.step, s.tolerance)]
    else:
        assert table is not None
        base = table.predict(cfg, s.res, s.setting)
        # a wide FLOPs band first (latency is not FLOPs, but not unrelated), and β, γ up to 1.25 √target
        wide = scaling_grid(s.target, s.step, tolerance=0.75, top=s.target)
        wide = [p for p in wide if max(p.beta, p.gamma) <= 1.25 * s.target**0.5 + 1e-9]
        points = []
        for p in wide:
            ratio = table.predict(*scale(cfg, s.res, p), s.setting) / base
            if abs(ratio - s.target) <= s.tolerance * s.target:
                points.append((p, ratio))
    if not points:
        raise ValueError(
            f"no grid point (step {s.step}) has a {s.constraint} cost within {s.tolerance:.0%} of {s.target}x the "
            "base's: widen --tolerance or refine --step"
        )
    return points


def spread(items: list, k: int) -> list:
    """``k`` items evenly spaced over ``items`` (all when there are no more than ``k``), first and last included."""
    if len(items) <= k:
        return list(items)
    if k == 1:
        return [items[len(items) // 2]]
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def search_scaling(
    s: ScalingSearch,
    out: str | Path,
    proxy: ProxyRun = DEFAULT_PROXY,
    *,
    table: LatencyTable | None = None,
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the search; writes ``OUT/candidates.csv``, ``OUT/arch.yaml`` (the winner), ``OUT/family/phiK.yaml``
    and ``OUT/search.json``, and returns the summary."""
    from ..registry import get_entry

    cfg = get_entry(s.base).config
    if not isinstance(cfg, EfficientNetConfig):
        raise ValueError(f"the scaling search needs an MBConv-family base (efficientnet*, mobilenetv3*), got {s.base}")
    out = Path(out)
    table = table or LatencyTable()
    points = sorted(constrained_grid(s, cfg, table))
    chosen = spread(points, s.max_candidates)
    log(f"{len(points)} grid points meet the {s.constraint} constraint; {len(chosen)} proxy-trained, and the base")
    candidates = [_candidate(out, s, cfg, ScalePoint(1.0, 1.0, 1.0), 1.0, table, "base")]
    candidates += [_candidate(out, s, cfg, p, cost, table) for p, cost in chosen]
    rows = run_candidates(candidates, proxy, out, jobs=jobs, log=log)
    if not is_main_rank():
        return {}  # rank 0 measures and reports
    rows = measure_rows(rows, out, s.setting)
    best = max(rows[1:], key=lambda r: (r["top1"], -r["measured_ms"]))
    point = ScalePoint(best["alpha"], best["beta"], best["gamma"])
    members = []
    for phi, scaled, res in family(cfg, s.res, point, range(1, s.phis + 1)):
        path = write_arch(out / "family" / f"phi{phi}.yaml", scaled, s.base, comment=f"phi {phi} of {point.label()}")
        members.append({"phi": phi, "arch": str(path), "res": res, **figures(scaled, res, table, s.setting)})
    summary = {"search": "scaling", **vars(s), "grid_points": len(points), "winner": best, "family": members}
    return finish_search(out, rows, best, summary, log)


def _candidate(
    out: Path, s: ScalingSearch, cfg: EfficientNetConfig, p: ScalePoint, cost: float, table: LatencyTable,
    label: str | None = None,
) -> Candidate:  # fmt: skip
    label = label or p.label()
    scaled, res = scale(cfg, s.res, p)
    arch = write_arch(out / "archs" / f"{label}.yaml", scaled, s.base, comment=f"{s.base} scaled by {p}")
    fig = figures(scaled, res, table, s.setting)
    fig |= {"alpha": p.alpha, "beta": p.beta, "gamma": p.gamma, "cost": round(cost, 4)}
    return Candidate(label, str(arch), res, fig)

"""EfficientNet's compound-scaling search (§3.3), on the user's device and data.

Step 1: the grid of (α, β, γ) that meets the constraint — the paper's α·β²·γ² ≈ target (``gmacs``), or the scaled
network's latency predicted from this device's table within a tolerance of target × the base's (``latency``: one
forward at ``batch``; ``train-step``: forward + backward) — is thinned to ``max_candidates`` spread over it. The
prediction only prunes: each of those is then measured whole against the base (:mod:`.measure`), and under a latency
constraint the ones measured over target × the base's time are dropped (and counted) and replaced by further grid
points — the band moved by the measured / predicted ratio seen so far — up to three times ``max_candidates``
measured. The ones inside are trained by short
proxy runs, ``seeds`` times each, and the winner is chosen by ``objective`` over the seeds' means
(:mod:`.choose`: the most accurate, or EfficientNetV2's reward), with a verdict against the runner-up. Step 2: the
base scaled by α^φ, β^φ, γ^φ for φ = 1…K, written as architecture files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arch import write_arch
from ..models.efficientnet import EfficientNetConfig
from .choose import check_objective, choose, score_rows
from .latency import LatencyTable, Setting
from .proxy import (
    DEFAULT_PROXY,
    Candidate,
    ProxyRun,
    is_main_rank,
    measure_candidates,
    measure_until_inside,
    run_candidates,
)
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
    objective: str = "accuracy"
    seeds: int = 1

    def __post_init__(self) -> None:
        check_objective(self.objective, self.seeds)
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"constraint must be one of {', '.join(CONSTRAINTS)}, got {self.constraint!r}")
        if not 0 < self.tolerance < 1:
            raise ValueError(f"tolerance must be in (0, 1), got {self.tolerance}")
        if self.max_candidates < 1 or self.phis < 0:
            raise ValueError("max_candidates must be >= 1 and phi >= 0")

    @property
    def setting(self) -> Setting:
        return Setting(batch=self.batch, mode="train" if self.constraint == "train-step" else "eval")


def grid_costs(s: ScalingSearch, cfg: EfficientNetConfig, table: LatencyTable | None) -> list[tuple[ScalePoint, float]]:
    """The grid points to choose from, each with its cost relative to the base: under ``gmacs`` the points within
    the tolerance and their FLOPs factor; under a latency constraint a wide FLOPs band (latency is not FLOPs, but not
    unrelated; β, γ up to 1.25 √target) and each point's predicted latency ratio."""
    if s.constraint == "gmacs":
        return [(p, p.flops_factor) for p in scaling_grid(s.target, s.step, s.tolerance)]
    assert table is not None
    base = table.predict(cfg, s.res, s.setting)
    wide = scaling_grid(s.target, s.step, tolerance=0.75, top=s.target)
    wide = [p for p in wide if max(p.beta, p.gamma) <= 1.25 * s.target**0.5 + 1e-9]
    return [(p, table.predict(*scale(cfg, s.res, p), s.setting) / base) for p in wide]


def in_band(
    points: list[tuple[ScalePoint, float]], s: ScalingSearch, correction: float = 1.0
) -> list[tuple[ScalePoint, float]]:
    """The points whose cost × ``correction`` is within the tolerance of the target — under a latency constraint, a
    budget, within the tolerance below it — the base left out."""
    low = s.target * (1 - s.tolerance)
    high = s.target * (1 + s.tolerance) if s.constraint == "gmacs" else s.target
    near = [(p, c) for p, c in points if low - 1e-9 <= c * correction <= high + 1e-9]
    return sorted(x for x in near if x[0] != ScalePoint(1.0, 1.0, 1.0))


def constrained_grid(
    s: ScalingSearch, cfg: EfficientNetConfig, table: LatencyTable | None
) -> list[tuple[ScalePoint, float]]:
    """The grid points meeting the constraint, each with its cost relative to the base (FLOPs factor or predicted
    latency ratio). ValueError when none does."""
    points = in_band(grid_costs(s, cfg, table), s)
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
    points = constrained_grid(s, cfg, table)
    log(f"{len(points)} grid points meet the {s.constraint} constraint; {s.max_candidates} wanted inside, and the base")
    base = _candidate(out, s, cfg, ScalePoint(1.0, 1.0, 1.0), 1.0, table, "base")
    measure_candidates([base], base, out, s.setting, log=log, min_time=table.whole_min_time)
    budget = None if s.constraint == "gmacs" else s.target
    propose = _proposer(s, cfg, table, out)
    picks, dropped = measure_until_inside(
        propose, s.max_candidates, base, out, s.setting, budget, log=log, min_time=table.whole_min_time
    )
    rows = run_candidates([base, *picks], proxy, out, seeds=s.seeds, jobs=jobs, log=log)
    if not is_main_rank():
        return {}  # rank 0 reports
    score_rows(rows, s.target, rows[0]["params_m"])  # the reward's budget: target x the base's measured time
    grown = [r for r in rows if r["label"] != "base"]
    if not grown:
        raise ValueError(
            f"all {len(dropped)} scaled candidates measured over {s.target}x the base's time: widen --tolerance or "
            "refine --step"
        )
    decision = choose(grown, s.objective)
    best = next(r for r in grown if r["label"] == decision["winner"])
    point = ScalePoint(best["alpha"], best["beta"], best["gamma"])
    members = []
    for phi, scaled, res in family(cfg, s.res, point, range(1, s.phis + 1)):
        path = write_arch(out / "family" / f"phi{phi}.yaml", scaled, s.base, comment=f"phi {phi} of {point.label()}")
        members.append({"phi": phi, "arch": str(path), "res": res, **figures(scaled, res, table, s.setting)})
    summary = {
        "search": "scaling", **vars(s), "grid_points": len(points), "base_measured_ms": rows[0]["measured_ms"],
        "budget_ms": None if s.constraint == "gmacs" else round(s.target * rows[0]["measured_ms"], 3),
        "measured": len(picks) + len(dropped),
        "dropped_by_measurement": len(dropped), "decision": decision, "winner": best, "family": members,
    }  # fmt: skip
    return finish_search(out, rows + dropped, best, summary, log)


def _proposer(s: ScalingSearch, cfg: EfficientNetConfig, table: LatencyTable, out: Path):
    """The next grid points to measure: spread over the band (the predicted cost × the correction within the
    tolerance of the target), those measured before left out."""
    costs = grid_costs(s, cfg, table)
    seen: set[ScalePoint] = set()

    def propose(correction: float, n: int) -> list[Candidate]:
        chosen = spread([(p, c) for p, c in in_band(costs, s, correction) if p not in seen], n)
        seen.update(p for p, _ in chosen)
        return [_candidate(out, s, cfg, p, c, table) for p, c in chosen]

    return propose


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

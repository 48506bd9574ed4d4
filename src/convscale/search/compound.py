"""EfficientNet's compound-scaling search (§3.3), on the user's device and data, on Optuna (:mod:`.study`).

Step 1: the grid of (α, β, γ) that meets the constraint — the paper's α·β²·γ² ≈ target (``gmacs``), or the scaled
network's latency predicted from this device's table within a tolerance of target × the base's (``latency``: one
forward at ``batch``; ``train-step``: forward + backward) — is thinned to ``max_candidates`` spread over it and,
with the base, walked by Optuna's grid sampler: a trial per point, on whichever worker takes it. The prediction only
prunes: each trial measures its network whole against the base (:mod:`.measure`) before it trains, and under a
latency constraint one measured over target × the base's time is dropped, not trained. The others are trained by a
short proxy run that the pruner may stop after any epoch (:mod:`.trial`); the survivors are confirmed over
``seeds`` runs (:mod:`.front`) and the winner is chosen by ``objective`` over the seeds' means (:mod:`.choose`: the
most accurate, or EfficientNetV2's reward), with a verdict against the runner-up. Step 2: the base scaled by α^φ,
β^φ, γ^φ for φ = 1…K, written as architecture files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..arch import write_arch
from ..models.efficientnet import EfficientNetConfig
from .choose import check_objective, choose, inside, score_rows
from .front import compute, conclude
from .latency import LatencyTable, Setting
from .proxy import DEFAULT_PROXY, Candidate, ProxyRun
from .report import base_ms, figures, finish_search, scorer, where
from .space import ScalePoint, family, scale, scaling_grid
from .study import Engine, open_storage, open_study, optuna, spare_beyond
from .trial import Trialist, pruner

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


def in_band(points: list[tuple[ScalePoint, float]], s: ScalingSearch) -> list[tuple[ScalePoint, float]]:
    """The points whose cost is within the tolerance of the target — under a latency constraint, a budget, within
    the tolerance below it — the base left out."""
    low = s.target * (1 - s.tolerance)
    high = s.target * (1 + s.tolerance) if s.constraint == "gmacs" else s.target
    near = [(p, c) for p, c in points if low - 1e-9 <= c <= high + 1e-9]
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
    storage: str | None = None,
    study: str = "search",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the search — or this worker's part of it: the study is in ``storage`` (default ``OUT/study.db``) — and
    write ``OUT/candidates.csv``, ``OUT/pareto.csv``, ``OUT/arch.yaml`` (the chosen network), ``OUT/family/phiK.yaml``
    and ``OUT/search.json``; returns the summary."""
    from ..registry import get_entry

    cfg = get_entry(s.base).config
    if not isinstance(cfg, EfficientNetConfig):
        raise ValueError(f"the scaling search needs an MBConv-family base (efficientnet*, mobilenetv3*), got {s.base}")
    out = Path(out)
    db = open_storage(out, storage)  # a bad URL is refused before anything runs
    table = table or LatencyTable()
    points = constrained_grid(s, cfg, table)
    picks = spread(points, s.max_candidates)
    log(f"{len(points)} grid points meet the {s.constraint} constraint; {len(picks)} of them and the base are the grid")
    made = {"base": (ScalePoint(1.0, 1.0, 1.0), 1.0), **{p.label(): (p, c) for p, c in picks}}
    labels, budget = list(made), None if s.constraint == "gmacs" else s.target

    def candidate(label: str) -> Candidate:
        p, c = made[label]
        return _candidate(out, s, cfg, p, c, table, label)

    identity = {"kind": "scaling", **{k: v for k, v in vars(s).items() if k != "seeds"}, "proxy": asdict(proxy)}
    sampler = optuna().samplers.GridSampler({"point": labels}, seed=0)
    engine = Engine(*open_study(db, study, identity, directions=["maximize"], sampler=sampler, pruner=pruner()), log)
    base = candidate("base")
    facts = engine.setup(lambda: {"base_ms": base_ms(base, s.setting, table, log)})
    trials = Trialist(base, s.setting, proxy, out / "runs", facts["base_ms"], budget,
                      scorer(s.objective, s.target, base.figures["params_m"]), table.whole_min_time, log)  # fmt: skip

    def objective(trial) -> float:
        spare_beyond(trial, len(labels))
        got = trials.run(trial, candidate(trial.suggest_categorical("point", labels)))
        return trials.score(got["top1"], got)

    log(f"study {study!r} in {where(db)}: {engine.count('COMPLETE', 'PRUNED')} of {len(labels)} trials done")
    engine.run(objective, len(labels))
    rows, ranked, confirmations = conclude(db, study, identity, engine.study, s.seeds,
                                           lambda label, seed: trials.confirm(candidate(label), seed),
                                           lambda label: candidate(label).arch, log)  # fmt: skip
    score_rows(ranked, s.target, base.figures["params_m"])  # the reward's budget: target x the base's measured time
    decision, best = _winner(ranked, budget, s.objective, len(rows))
    members = _family(out, s, cfg, ScalePoint(best["alpha"], best["beta"], best["gamma"]), table)
    summary = {
        "search": "scaling", **vars(s), "grid_points": len(points), "base_measured_ms": facts["base_ms"],
        "budget_ms": None if budget is None else round(budget * facts["base_ms"], 3),
        "measured": sum("measured_ratio" in r for r in rows), **compute(rows, confirmations),
        "decision": decision, "winner": best, "family": members, "storage": where(db), "study": study,
    }  # fmt: skip
    return finish_search(out, rows, ranked, best, summary, log)


def _winner(ranked: list[dict[str, Any]], budget: float | None, objective: str, trials: int) -> tuple[dict, dict]:
    """The decision among the scaled networks (the base aside) inside the budget, and the winner's row."""
    grown = [r for r in ranked if r["label"] != "base" and inside(r, budget)]
    if not grown:
        raise ValueError(
            f"no scaled candidate trained to the end inside the budget ({trials} trials): widen --tolerance, refine "
            "--step or raise --max-candidates"
        )
    decision = choose(grown, objective)
    return decision, next(r for r in grown if r["label"] == decision["winner"])


def _family(out: Path, s: ScalingSearch, cfg: EfficientNetConfig, point: ScalePoint, table: LatencyTable) -> list:
    """Step 2: the base scaled by the winner's coefficients to the power φ = 1…K, as architecture files."""
    members = []
    for phi, scaled, res in family(cfg, s.res, point, range(1, s.phis + 1)):
        path = write_arch(out / "family" / f"phi{phi}.yaml", scaled, s.base, comment=f"phi {phi} of {point.label()}")
        members.append({"phi": phi, "arch": str(path), "res": res, **figures(scaled, res, table, s.setting)})
    return members


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

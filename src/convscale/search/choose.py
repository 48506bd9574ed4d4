"""Choosing the winner of a search: the candidates measured inside the budget, ranked by an objective over the
mean of their seeds, and the margin over the runner-up judged against the seeds' spread.

Objectives: ``accuracy`` — the most accurate network inside the measured budget, parameters reported but not
penalised (what a latency-bound user asks for); ``reward`` — EfficientNetV2's A · (S/T)^w · (P/P0)^v with
w = −0.07, v = −0.05 (A the proxy top-1, S the measured time, T the budget, P the parameters against the base's),
each seed's score computed from that seed's accuracy.

The verdict is ``win`` when the winner's mean beats the runner-up's by more than the spread (the larger of the two
candidates' standard deviations over seeds), ``tie`` when it does not, ``one seed`` when no spread is known, and
``only candidate`` when nothing else was inside the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..utils.stats import mean_spread

__all__ = ["OBJECTIVES", "check_objective", "choose", "inside", "reward", "score_rows"]

OBJECTIVES = ("accuracy", "reward")
W, V = -0.07, -0.05  # EfficientNetV2's reward exponents for step time and parameters


def check_objective(objective: str, seeds: int) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer, got {seeds!r}")


def reward(accuracy: float, step: float, budget: float, params: float, base_params: float) -> float:
    """EfficientNetV2's reward A · (S/T)^w · (P/P0)^v."""
    return accuracy * (step / budget) ** W * (params / base_params) ** V


def inside(row: dict[str, Any], budget_ratio: float | None) -> bool:
    """Whether a measured row is within the budget (a ratio to the base's measured time; None: no budget)."""
    return budget_ratio is None or float(row["measured_ratio"]) <= budget_ratio * (1 + 1e-9)


def score_rows(rows: Sequence[dict[str, Any]], budget_ratio: float, base_params: float) -> None:
    """Add each trained row's ``reward`` and ``reward_std`` (over its seeds), in place; the time against the budget
    is the measured ratio against the budget ratio."""
    for r in rows:
        seeds = [float(t) for t in str(r["top1_seeds"]).split()]
        args = (float(r["measured_ratio"]), budget_ratio, float(r["params_m"]), base_params)
        mean, std = mean_spread([reward(a, *args) for a in seeds])
        r["reward"], r["reward_std"] = round(mean, 4), round(std, 4)


def choose(rows: Sequence[dict[str, Any]], objective: str) -> dict[str, Any]:
    """The winner among ``rows`` (trained, inside the budget) by ``objective``, and the verdict against the
    runner-up (see the module). Ties on the mean go to the faster measured."""
    check_objective(objective, 1)
    if not rows:
        raise ValueError("no trained candidate is inside the budget")
    key, std = ("top1", "top1_std") if objective == "accuracy" else ("reward", "reward_std")
    ranked = sorted(rows, key=lambda r: (-float(r[key]), float(r["measured_ms"])))
    winner = ranked[0]
    decision: dict[str, Any] = {"objective": objective, "winner": winner["label"], "score": float(winner[key])}
    if len(ranked) == 1:
        return decision | {"verdict": "only candidate"}
    runner = ranked[1]
    margin = float(winner[key]) - float(runner[key])
    spread = max(float(winner[std]), float(runner[std]))
    if int(winner.get("seeds", 1)) < 2:
        verdict = "one seed"
    else:
        verdict = "win" if margin > spread else "tie"
    return decision | {
        "runner_up": runner["label"],
        "runner_up_score": float(runner[key]),
        "margin": round(margin, 4),
        "spread": round(spread, 4),
        "verdict": verdict,
    }

"""The answer of a search, read from its studies: every trial as a row, the survivors (trials that trained to the
end) confirmed over ``seeds`` runs at full length, the Pareto front of their mean top-1 against measured latency, and
the network chosen for the user's objective (:mod:`.choose`).

The confirmation is its own study (``<study>:seeds<N>``) whose grid is (survivor, seed) for seeds 1 … ``seeds``−1, the
trial's own run being seed 0: each pair runs once, on whichever worker takes it, and a rerun runs only what is
missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..utils.stats import mean_spread
from .study import Engine, open_study, optuna, spare_beyond

__all__ = ["compute", "conclude", "confirm", "hypervolume", "survivors", "trial_rows", "with_seeds"]

_INTERNAL = ("spare",)


def trial_rows(study) -> list[dict[str, Any]]:
    """Every trial of ``study`` (the spare ones aside) as a row: its number and state, then its figures."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = dict(t.user_attrs)
        if attrs.get("spare"):
            continue
        state = t.state.name.lower()
        retried = t.system_attrs.get("failed_trial")
        row = {"trial": t.number, "state": state, **t.params, **{k: v for k, v in attrs.items() if k not in _INTERNAL}}
        if retried is not None:
            row["retry_of"] = retried
        rows.append(row)
    return rows


def survivors(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The completed trials, one per network (a network sampled twice keeps its first)."""
    seen, kept = set(), []
    for r in rows:
        if r["state"] == "complete" and r["label"] not in seen:
            seen.add(r["label"])
            kept.append(r)
    return kept


def confirm(
    storage, name: str, identity: dict[str, Any], kept: Sequence[dict[str, Any]], seeds: int,
    run: Callable[[str, int], float], log: Callable[[str], Any] = print,
) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:  # fmt: skip
    """Each kept network's top-1 over ``seeds`` runs — its trial's (seed 0) and, from the ``name:seedsN`` study, seeds
    1 … ``seeds``−1, run here by ``run(label, seed)`` unless another worker has — and the confirmation trials' rows."""
    import time

    tops = {r["label"]: [float(r["top1"])] for r in kept}
    if seeds < 2 or not kept:
        return tops, []
    opt = optuna()
    labels = [r["label"] for r in kept]
    grid = {"label": labels, "seed": list(range(1, seeds))}
    sampler = opt.samplers.GridSampler(grid, seed=0)
    study, created = open_study(storage, f"{name}:seeds{seeds}", identity | {"confirms": labels},
                                directions=["maximize"], sampler=sampler)  # fmt: skip
    engine = Engine(study, created, log)
    engine.setup(dict)
    planned = len(labels) * (seeds - 1)

    def objective(trial) -> float:
        spare_beyond(trial, planned)
        label, seed = trial.suggest_categorical("label", labels), trial.suggest_categorical("seed", grid["seed"])
        started = time.process_time()
        top1 = run(label, seed)
        trial.set_user_attr("top1", top1)
        trial.set_user_attr("cpu_s", round(time.process_time() - started, 1))
        log(f"  {label} seed {seed}: top-1 {top1:.2f}%")
        return top1

    engine.run(objective, planned)
    done = study.get_trials(deepcopy=False, states=(opt.trial.TrialState.COMPLETE,))
    for t in sorted(done, key=lambda t: t.params["seed"]):
        if t.params["label"] in tops:
            tops[t.params["label"]].append(float(t.value))
    return tops, trial_rows(study)


def with_seeds(kept: Sequence[dict[str, Any]], tops: dict[str, list[float]]) -> list[dict[str, Any]]:
    """The kept rows with ``top1`` the mean over their seeds, ``top1_std`` the spread, ``top1_seeds`` each."""
    rows = []
    for r in kept:
        values = tops[r["label"]]
        mean, std = mean_spread(values)
        rows.append(r | {"top1_seed0": r["top1"], "top1": round(mean, 3), "top1_std": round(std, 3),
                         "top1_seeds": " ".join(f"{v:.2f}" for v in values), "seeds": len(values)})  # fmt: skip
    return rows


def conclude(
    db, name: str, identity: dict[str, Any], study, seeds: int, confirm_run: Callable[[str, int], float],
    arch_of: Callable[[str], str], log: Callable[[str], Any] = print,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """A finished study's rows (every trial), its survivors over ``seeds`` (each row with its local ``arch`` file),
    and the confirmation runs' rows."""
    rows = trial_rows(study)
    tops, confirmations = confirm(db, name, identity, survivors(rows), seeds, confirm_run, log)
    ranked = [r | {"arch": arch_of(r["label"])} for r in with_seeds(survivors(rows), tops)]
    return rows, ranked, confirmations


def hypervolume(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """The area that (latency, top-1) ``points`` dominate — lower latency and higher top-1 — up to ``ref`` (a
    latency above every point's, a top-1 below): the measure of a Pareto front, larger is better."""
    inside = sorted(p for p in points if p[0] < ref[0] and p[1] > ref[1])
    area, best = 0.0, ref[1]
    for i, (latency, top1) in enumerate(inside):
        best = max(best, top1)  # at latencies from this point's to the next, the best top-1 reached so far
        upto = inside[i + 1][0] if i + 1 < len(inside) else ref[0]
        area += (upto - latency) * (best - ref[1])
    return area


def compute(rows: Sequence[dict[str, Any]], confirmations) -> dict[str, Any]:
    """What the search spent: trials started, pruned, dropped by measurement, completed, failed (lost workers), the
    confirmation runs, and CPU-minutes over all of them."""
    count = {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail")}
    dropped = sum(bool(r.get("dropped")) for r in rows)
    cpu = sum(float(r.get("cpu_s", 0.0)) for r in rows) + sum(float(c.get("cpu_s", 0.0)) for c in confirmations)
    return {
        "trials_started": len(rows), "trials_completed": count["complete"], "trials_pruned": count["pruned"] - dropped,
        "dropped_by_measurement": dropped, "trials_failed": count["fail"], "confirmation_runs": len(confirmations),
        "cpu_minutes": round(cpu / 60, 2),
    }  # fmt: skip

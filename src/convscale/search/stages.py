"""EfficientNetV2's stage search (§3.2, after MnasNet), against this device's measured latency.

Per stage: block (MBConv / Fused-MBConv), expansion (1, 4, 6), kernel (3, 5), layers (the base's ± 1). The
objective (:mod:`.choose`) is EfficientNetV2's reward A · (S/T)^w · (P/P0)^v with w = −0.07, v = −0.05 — A the proxy
accuracy, S the step time (a training step, or one forward with ``--budget-ms``) against the budget T, P the params
against the base's — or ``accuracy``: the most accurate inside the budget, parameters not penalised.

Predicted times are anchored on the base (× its measured / predicted time), so that they compare with a budget in
measured milliseconds. Ranking the space cannot use A (nothing is trained yet), so candidates within the budget
(predicted S ≤ T) are ranked by the same reward with GMACs in A's place — the most computation the budget buys, the
usual zero-cost stand-in — by enumeration when the space is small and by a seeded evolutionary search otherwise.
The prediction only prunes: the best-ranked are measured whole against the base, those measured over the budget are
dropped (counted) and the space ranked again with the predictions read through the measured / predicted ratio seen so
far, the next ones measured, up to three times ``proxies``, until ``proxies`` are inside; those and the base are
trained ``seeds`` times each, and the winner is chosen over the seeds' means, inside the measured budget.
Latency is a sum over parts and each stage's parts depend on that stage's choice alone (its input width and size
are the base's), so the fastest network of the space is the fastest choice per stage: a budget below it is
refused before anything runs.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arch import write_arch
from ..models.efficientnet import EfficientNetConfig
from .choose import check_objective, choose, inside, reward, score_rows
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
from .report import counts, figures, finish_search
from .space import StageChoice, apply_choices, base_choices, is_mbconv_family, stage_options

__all__ = ["StageSearch", "reward", "search_stages"]

W = -0.07  # EfficientNetV2's reward exponent for step time (the pre-training rank uses it too)


@dataclass(frozen=True)
class StageSearch:
    """What ``convscale search stages`` asks for. ``budget_ms`` None: the base's measured time."""

    base: str
    res: int
    budget_ms: float | None = None
    mode: str = "train"  # "train": a training step (--budget-step-ms); "eval": a forward (--budget-ms)
    batch: int = 16
    proxies: int = 3
    stages: tuple[int, ...] | None = None  # which stages may change (default: all)
    seed: int = 0
    max_enumerate: int = 4096
    population: int = 32
    generations: int = 20
    objective: str = "reward"
    seeds: int = 1  # proxy runs per candidate

    def __post_init__(self) -> None:
        check_objective(self.objective, self.seeds)

    @property
    def setting(self) -> Setting:
        return Setting(batch=self.batch, mode=self.mode)


class _Space:
    """The searchable choices, and each one's predicted latency and GMACs (summed per stage)."""

    def __init__(self, s: StageSearch, cfg: EfficientNetConfig, table: LatencyTable) -> None:
        self.s, self.cfg, self.table = s, cfg, table
        self.anchor = 1.0  # measured / predicted for the base: predictions are compared with measured budgets
        n = len(cfg.stages)
        free = set(range(n)) if s.stages is None else set(s.stages)
        bad = sorted(i for i in free if not 0 <= i < n)
        if bad:
            raise ValueError(f"stage {bad[0]} does not exist: {s.base} has stages 0-{n - 1}")
        base = base_choices(cfg)
        self.options = [stage_options(cfg, i) if i in free else [base[i]] for i in range(n)]
        self.size = math.prod(len(o) for o in self.options)
        self._cost: dict[tuple[StageChoice, ...], float] = {}

    def latency(self, choices: tuple[StageChoice, ...]) -> float:
        if choices not in self._cost:
            self._cost[choices] = self.table.predict(apply_choices(self.cfg, choices), self.s.res, self.s.setting)
        return self._cost[choices] * self.anchor

    def fastest(self) -> float:
        """The smallest predicted latency in the space: latency is additive and a stage's parts depend on its own
        choice only, so the fastest network takes each stage's fastest option, found with the others at the base's."""
        base = base_choices(self.cfg)
        best = [
            min(options, key=lambda o, i=i: self.latency((*base[:i], o, *base[i + 1 :])))
            for i, options in enumerate(self.options)
        ]
        return self.latency(tuple(best))


def _ranked(space: _Space, budget: float, log: Callable[[str], None]) -> list[tuple[float, tuple[StageChoice, ...]]]:
    """Candidates within the budget by the pre-training score (GMACs in the accuracy's place), best first."""
    s, macs = space.s, {}

    def score(c: tuple[StageChoice, ...]) -> float:
        t = space.latency(c)
        if t > budget:
            return float("-inf")
        if c not in macs:
            macs[c] = float(counts(apply_choices(space.cfg, c), s.res)[0])
        return macs[c] * (t / budget) ** W

    if space.size <= s.max_enumerate:
        pool = list(itertools.product(*space.options))
        log(f"stage space: {space.size} networks, enumerated")
    else:
        pool = _evolve(space, score, budget)
        log(
            f"stage space: {space.size:.3g} networks; evolutionary search "
            f"({s.population} x {s.generations}, seed {s.seed})"
        )
    scored = sorted(((score(c), c) for c in dict.fromkeys(pool)), key=lambda x: (-x[0], x[1]))
    return [x for x in scored if x[0] > float("-inf")]


def _evolve(space: _Space, score: Callable, budget: float) -> list[tuple[StageChoice, ...]]:
    """Aging-free (μ + λ) evolution: mutate one free stage of a parent drawn from the best half, keep the best."""
    s = space.s
    rng = random.Random(s.seed)
    free = [i for i, o in enumerate(space.options) if len(o) > 1]
    population = [base_choices(space.cfg)]
    population += [tuple(rng.choice(o) for o in space.options) for _ in range(s.population - 1)]
    seen = set(population)
    for _ in range(s.generations):
        parents = sorted(population, key=score, reverse=True)[: max(2, s.population // 2)]
        children = []
        for _ in range(s.population):
            child = list(rng.choice(parents))
            i = rng.choice(free)
            child[i] = rng.choice(space.options[i])
            children.append(tuple(child))
        seen.update(children)
        population = sorted(set(population) | set(children), key=score, reverse=True)[: s.population]
    return list(seen)


def search_stages(
    s: StageSearch,
    out: str | Path,
    proxy: ProxyRun = DEFAULT_PROXY,
    *,
    table: LatencyTable | None = None,
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the search; writes ``OUT/candidates.csv``, ``OUT/arch.yaml`` and ``OUT/search.json``; returns the summary."""
    from ..registry import get_entry

    entry = get_entry(s.base)
    if not is_mbconv_family(entry.config):
        raise ValueError(
            f"the stage search needs an MBConv-family base (efficientnet*, efficientnetv2*, mobilenetv3*), "
            f"got {s.base} (family {entry.family})"
        )
    cfg: EfficientNetConfig = entry.config
    out = Path(out)
    table = table or LatencyTable()
    space = _Space(s, cfg, table)
    base = _candidate(out, s, cfg, base_choices(cfg), "base", table)
    whole = table.whole_min_time  # the least seconds each timing of a whole network runs
    base_ms = measure_candidates([base], base, out, s.setting, log=log, min_time=whole)[0]["measured_ms"]
    space.anchor = base_ms / 1e3 / space.latency(base_choices(cfg))
    budget = (s.budget_ms if s.budget_ms is not None else base_ms) / 1e3
    fastest = space.fastest()
    if budget < fastest:
        raise ValueError(
            f"the budget {budget * 1e3:.2f} ms is below the fastest network of the space ({fastest * 1e3:.2f} ms "
            f"predicted for a {s.setting.mode} call at batch {s.batch}, {s.res} px)"
        )
    ranked = _ranked(space, budget, log)
    ratio = budget * 1e3 / base_ms
    propose = _proposer(s, cfg, space, table, out, budget, ranked, log)
    picks, dropped = measure_until_inside(propose, s.proxies, base, out, s.setting, ratio, log=log, min_time=whole)
    rows = run_candidates([base, *picks], proxy, out, seeds=s.seeds, jobs=jobs, log=log)
    if not is_main_rank():
        return {}  # rank 0 reports
    score_rows(rows, ratio, rows[0]["params_m"])
    eligible = [r for r in rows if inside(r, ratio)]  # the base too, unless the budget is below it
    decision = choose(eligible, s.objective)
    best = next(r for r in rows if r["label"] == decision["winner"])
    summary = {
        "search": "stages",
        "anchor": round(space.anchor, 4),
        **vars(s),
        "budget_ms": round(budget * 1e3, 3),
        "base_measured_ms": round(base_ms, 3),
        "space": space.size,
        "within_budget": len(ranked),
        "measured": len(picks) + len(dropped),
        "dropped_by_measurement": len(dropped),
        "decision": decision,
        "winner": best,
        "table": _table(best, cfg),
    }
    return finish_search(out, rows + dropped, best, summary, log)


def _proposer(
    s: StageSearch, cfg: EfficientNetConfig, space: _Space, table: LatencyTable, out: Path, budget: float,
    ranked: list, log: Callable[[str], None],
) -> Callable[[float, int], list[Candidate]]:  # fmt: skip
    """The next networks to measure: the best-ranked not yet measured, the space ranked within the budget as the
    correction (measured / predicted so far) reads the predictions."""
    base_choice, tried, ranks = base_choices(cfg), set(), {1.0: ranked}

    def make(c: tuple[StageChoice, ...], i: int) -> Candidate:
        cand = _candidate(out, s, cfg, c, f"c{i}-" + "-".join(x.label() for x in c), table)
        cost = space.latency(c) / space.latency(base_choice)  # predicted, relative to the base
        return dataclasses.replace(cand, figures=cand.figures | {"cost": round(cost, 4)})

    def propose(correction: float, n: int) -> list[Candidate]:
        if correction not in ranks:
            ranks[correction] = _ranked(space, budget / correction, log)
        queue = [c for _, c in ranks[correction] if c != base_choice and c not in tried][:n]
        tried.update(queue)
        k = len(tried) - len(queue)
        return [make(c, k + i) for i, c in enumerate(queue)]

    return propose


def _table(row: dict[str, Any], cfg: EfficientNetConfig) -> list[str]:
    from ..arch import read_arch

    _, won = read_arch(row["arch"])
    return [f"{s.block} e{s.expand:g} k{s.kernel} x{s.repeats} s{s.stride} -> {s.out_chs}" for s in won.stages]


def _candidate(
    out: Path,
    s: StageSearch,
    cfg: EfficientNetConfig,
    choices: tuple[StageChoice, ...],
    label: str,
    table: LatencyTable,
) -> Candidate:
    net = apply_choices(cfg, choices)
    arch = write_arch(out / "archs" / f"{label}.yaml", net, s.base, comment=f"stage search from {s.base}: {label}")
    fig = figures(net, s.res, table, s.setting) | {"stages": " ".join(c.label() for c in choices)}
    return Candidate(label, str(arch), s.res, fig)

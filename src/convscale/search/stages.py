"""EfficientNetV2's stage search (§3.2, after MnasNet), against this device's measured latency, on Optuna's NSGA-II.

Per stage: block (MBConv / Fused-MBConv), expansion (1, 4, 6), kernel (3, 5), layers (the base's ± 1). The study has
two objectives — the proxy top-1 (up) and the measured latency (down) — and NSGA-II (:mod:`.study`) samples each
trial's choices from the non-dominated trials so far, the base first; the budget (a training step, or one forward
with ``--budget-ms``; default: the base's measured time) is its constraint. A trial whose network is predicted from
the latency table more than 10% over the budget is dropped unmeasured; the others are measured whole against the
base (:mod:`.measure`) and dropped when measured over it; the rest are trained by a proxy run that the pruner may
stop after any epoch (:mod:`.trial`). The survivors are confirmed over ``seeds`` runs and the answer is their Pareto
front (:mod:`.front`), with the network chosen by ``objective`` (:mod:`.choose`): ``reward`` — EfficientNetV2's
A · (S/T)^w · (P/P0)^v with w = −0.07, v = −0.05, A the proxy accuracy, S the measured time against the budget T,
P the params against the base's — or ``accuracy``: the most accurate inside the budget.

Latency is a sum over parts and each stage's parts depend on that stage's choice alone (its input width and size
are the base's), so the fastest network of the space is the fastest choice per stage: a budget below it is
refused before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..arch import write_arch
from ..models.efficientnet import EfficientNetConfig
from .choose import check_objective, choose, inside, reward, score_rows
from .front import compute, conclude
from .latency import LatencyTable, Setting
from .proxy import DEFAULT_PROXY, Candidate, ProxyRun
from .report import base_ms, figures, finish_search, scorer, where
from .space import StageChoice, apply_choices, base_choices, is_mbconv_family, stage_options
from .study import Engine, open_storage, open_study, optuna, spare_beyond
from .trial import Trialist, pruner

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
    trials: int = 12  # networks sampled (the base among them)
    stages: tuple[int, ...] | None = None  # which stages may change (default: all)
    seed: int = 0  # NSGA-II's
    objective: str = "reward"
    seeds: int = 1  # proxy runs per survivor

    def __post_init__(self) -> None:
        check_objective(self.objective, self.seeds)
        if not isinstance(self.trials, int) or self.trials < 1:
            raise ValueError(f"trials must be a positive integer, got {self.trials!r}")

    @property
    def setting(self) -> Setting:
        return Setting(batch=self.batch, mode=self.mode)


def _with(options: list[StageChoice], own: StageChoice) -> list[StageChoice]:
    return options if own in options else [own, *options]


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
        # each free stage: the options, and the base's own choice where it is not one of them (MobileNetV3's
        # expansions of 4.5 or 3.67): the base is a network of the space, the study's first trial
        self.options = [_with(stage_options(cfg, i), base[i]) if i in free else [base[i]] for i in range(n)]
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


def search_stages(
    s: StageSearch,
    out: str | Path,
    proxy: ProxyRun = DEFAULT_PROXY,
    *,
    table: LatencyTable | None = None,
    storage: str | None = None,
    study: str = "search",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the search — or this worker's part of it: the study is in ``storage`` (default ``OUT/study.db``) — and
    write ``OUT/candidates.csv``, ``OUT/pareto.csv``, ``OUT/arch.yaml`` and ``OUT/search.json``; returns the
    summary."""
    from ..registry import get_entry

    entry = get_entry(s.base)
    if not is_mbconv_family(entry.config):
        raise ValueError(
            f"the stage search needs an MBConv-family base (efficientnet*, efficientnetv2*, mobilenetv3*), "
            f"got {s.base} (family {entry.family})"
        )
    out = Path(out)
    db = open_storage(out, storage)  # a bad URL is refused before anything runs
    space = _Space(s, entry.config, table or LatencyTable())
    identity = {"kind": "stages", **{k: v for k, v in vars(s).items() if k not in ("seeds", "trials")},
                "proxy": asdict(proxy)}  # fmt: skip
    budget_of: dict[str, float] = {}  # the constraint reads the budget ratio, known once the base is measured
    st, engine = _open(db, study, identity, s, budget_of, log)
    work = _StageTrials(s, space, out, log)
    facts = engine.setup(lambda: {"base_ms": base_ms(work.base, s.setting, space.table, log)},
                         queue=[work.params(work.start)])  # fmt: skip
    space.anchor = facts["base_ms"] / 1e3 / space.latency(work.start)
    budget = (s.budget_ms if s.budget_ms is not None else facts["base_ms"]) / 1e3
    fastest = space.fastest()
    if budget < fastest:
        raise ValueError(
            f"the budget {budget * 1e3:.2f} ms is below the fastest network of the space ({fastest * 1e3:.2f} ms "
            f"predicted for a {s.setting.mode} call at batch {s.batch}, {s.res} px)"
        )
    ratio = budget_of["ratio"] = budget * 1e3 / facts["base_ms"]
    params_0 = work.base.figures["params_m"]
    work.trials = Trialist(work.base, s.setting, proxy, out / "runs", facts["base_ms"], ratio,
                           scorer(s.objective, ratio, params_0), space.table.whole_min_time, log)  # fmt: skip
    log(f"stage space: {space.size} networks; study {study!r} in {where(db)}: {engine.count('COMPLETE', 'PRUNED')} "
        f"of {s.trials} trials done")  # fmt: skip
    engine.run(work.objective, s.trials)
    known = {work.label(c): c for c in (work.choices(t.params) for t in st.get_trials(deepcopy=False)) if c}
    rows, ranked, confirmations = conclude(db, study, identity, st, s.seeds,
                                           lambda label, seed: work.trials.confirm(work.candidate(known[label]), seed),
                                           lambda label: work.candidate(known[label]).arch, log)  # fmt: skip
    score_rows(ranked, ratio, params_0)
    decision = choose([r for r in ranked if inside(r, ratio)], s.objective)  # the base too, unless over the budget
    best = next(r for r in ranked if r["label"] == decision["winner"])
    summary = {
        "search": "stages", "anchor": round(space.anchor, 4), **vars(s), "budget_ms": round(budget * 1e3, 3),
        "base_measured_ms": facts["base_ms"], "space": space.size, "measured": sum("measured_ratio" in r for r in rows),
        **compute(rows, confirmations), "decision": decision, "winner": best, "table": _table(best, space.cfg),
        "storage": where(db), "study": study,
    }  # fmt: skip
    return finish_search(out, rows, ranked, best, summary, log)


class _StageTrials:
    """The stage search's trials: a trial's parameters (one option label per stage) to its network, and the
    objective — dropped when predicted more than 10% over the budget, else measured, then trained (:mod:`.trial`)."""

    def __init__(self, s: StageSearch, space: _Space, out: Path, log: Callable[[str], None]) -> None:
        self.s, self.space, self.out, self.log = s, space, out, log
        self.start = base_choices(space.cfg)
        self.names = [f"stage{i}" for i in range(len(space.options))]
        self.options = [{c.label(): c for c in options} for options in space.options]
        self.base = self.candidate(self.start)
        self.trials: Trialist | None = None

    def params(self, choices: tuple[StageChoice, ...]) -> dict[str, str]:
        return {n: c.label() for n, c in zip(self.names, choices, strict=True)}

    def choices(self, params: dict[str, Any]) -> tuple[StageChoice, ...] | None:
        if any(n not in params for n in self.names):
            return None
        return tuple(self.options[i][params[n]] for i, n in enumerate(self.names))

    def label(self, choices: tuple[StageChoice, ...]) -> str:
        return "base" if choices == self.start else "-".join(c.label() for c in choices)

    def candidate(self, choices: tuple[StageChoice, ...]) -> Candidate:
        return _candidate(self.out, self.s, self.space.cfg, choices, self.label(choices), self.space.table)

    def objective(self, trial) -> tuple[float, float]:
        assert self.trials is not None
        spare_beyond(trial, self.s.trials)
        params = {n: trial.suggest_categorical(n, list(self.options[i])) for i, n in enumerate(self.names)}
        choices = self.choices(params)
        cand = self.candidate(choices)
        predicted_ms = self.space.latency(choices) * 1e3
        if predicted_ms > 1.1 * self.trials.budget * self.trials.base_ms and "measured_ratio" not in trial.user_attrs:
            for key, value in {"label": cand.label, **cand.figures, "dropped": "predicted over the budget"}.items():
                trial.set_user_attr(key, value)
            raise optuna().TrialPruned("predicted over the budget")
        got = self.trials.run(trial, cand)
        return got["top1"], float(got["measured_ms"])


def _open(db, name: str, identity: dict[str, Any], s: StageSearch, budget_of: dict[str, float], log):
    """The study of two objectives (top-1 up, measured latency down) sampled by NSGA-II with the budget as its
    constraint, and this worker's engine."""

    def constraint(trial) -> list[float]:
        return [float(trial.user_attrs.get("measured_ratio", 0.0)) - budget_of["ratio"]]

    population = max(4, min(50, s.trials // 3))
    sampler = optuna().samplers.NSGAIISampler(population_size=population, seed=s.seed, constraints_func=constraint)
    st, created = open_study(db, name, identity, directions=["maximize", "minimize"], sampler=sampler,
                             pruner=pruner())  # fmt: skip
    return st, Engine(st, created, log)


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

"""A search's artifacts: every trial in ``candidates.csv`` (pruned, dropped by measurement and failed ones too), the
Pareto front of the survivors in ``pareto.csv``, the chosen network as ``arch.yaml``, the summary in
``search.json``, and the plot of mean proxy accuracy (with its spread over seeds) against measured latency with the
front drawn (``pareto.png``, with the ``convscale[plot]`` extra); and the small figures the two searches share."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..counting import count_macs, count_params
from ..models.efficientnet import EfficientNet, EfficientNetConfig
from ..utils.atomic import atomic_write_csv, atomic_write_text
from .latency import LatencyTable, Setting

__all__ = ["base_ms", "counts", "figures", "finish_search", "pareto_front", "plot_pareto", "scorer", "where"]


def counts(cfg: EfficientNetConfig, res: int) -> tuple[int, int]:
    """Multiply-adds per image at ``res`` and parameters of the network ``cfg`` builds (on the meta device)."""
    with torch.device("meta"):
        model = EfficientNet(cfg)
    return count_macs(model, res), count_params(model)


def figures(cfg: EfficientNetConfig, res: int, table: LatencyTable, setting: Setting) -> dict[str, float]:
    """GMACs and params (:func:`counts`) and the latency predicted from ``table``, in ms."""
    macs, params = counts(cfg, res)
    return {
        "gmacs": round(macs / 1e9, 4),
        "params_m": round(params / 1e6, 3),
        "predicted_ms": round(table.predict(cfg, res, setting) * 1e3, 3),
    }


def base_ms(base, setting: Setting, table: LatencyTable, log: Callable[[str], None]) -> float:
    """The base's measured latency in ms (rounds until its spread is small): every trial's is its measured ratio to
    the base times this."""
    from ..arch import read_arch
    from .measure import measure_against_base

    log(f"measuring the base {base.label} ({setting.mode}, batch {setting.batch}, {base.res} px)")
    measured, _ = measure_against_base((read_arch(base.arch)[1], base.res), {}, setting, min_time=table.whole_min_time)
    return round(measured.ms, 3)


def scorer(objective: str, budget_ratio: float, base_params: float) -> Callable[[float, dict[str, Any]], float]:
    """The objective's value of a top-1 for a trial's figures: the top-1 itself, or EfficientNetV2's reward."""
    from .choose import reward

    if objective == "accuracy":
        return lambda top1, figures: top1
    return lambda top1, figures: reward(
        top1, float(figures["measured_ratio"]), budget_ratio, float(figures["params_m"]), base_params
    )


def where(storage) -> str:
    """The storage's URL as it may be shown (no password)."""
    from .study import _safe

    return _safe(str(getattr(storage, "url", storage)))


def pareto_front(rows: Sequence[dict[str, Any]], x: str = "measured_ms", y: str = "top1") -> list[dict[str, Any]]:
    """The rows no other row beats on both lower ``x`` and higher ``y``, by ``x``."""
    front, best = [], float("-inf")
    for r in sorted(rows, key=lambda r: (r[x], -r[y])):
        if r[y] > best:
            front.append(r)
            best = r[y]
    return front


def finish_search(
    out: Path,
    rows: list[dict[str, Any]],
    ranked: list[dict[str, Any]],
    best: dict[str, Any],
    summary: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Write the artifacts (``rows``: every trial; ``ranked``: the survivors over their seeds) and return
    ``summary``, with the front added."""
    front = pareto_front(ranked)
    summary["front"] = [r["label"] for r in front]
    atomic_write_csv(out / "candidates.csv", rows)
    atomic_write_csv(out / "pareto.csv", front)
    shutil.copyfile(best["arch"], out / "arch.yaml.tmp")
    (out / "arch.yaml.tmp").replace(out / "arch.yaml")
    atomic_write_text(out / "search.json", json.dumps(summary, indent=1, default=str))
    try:
        title = f"{summary['search']} search from {summary['base']}"
        gone = [float(r["measured_ms"]) for r in rows if r.get("dropped") and "measured_ms" in r]
        plot_pareto({summary["search"]: ranked}, out / "pareto.png", title, budget_ms=summary["budget_ms"],
                    dropped=gone)  # fmt: skip
    except ImportError as e:
        from ..utils.extras import note_missing

        note_missing(e, "pareto.png", log)
    d = summary["decision"]
    log(f"winner {best['label']}: top-1 {best['top1']:.2f}% (± {best['top1_std']:.2f} over {best['seeds']} seeds), "
        f"{best['measured_ms']:.2f} ms measured ({best['predicted_ms']:.2f} predicted), {best['gmacs']:.3f} GMACs "
        f"-> {out / 'arch.yaml'}")  # fmt: skip
    if "runner_up" in d:
        log(f"{d['verdict']}: {d['objective']} {d['score']:.2f} against {d['runner_up']}'s {d['runner_up_score']:.2f} "
            f"(margin {d['margin']:.2f}, spread {d['spread']:.2f})")  # fmt: skip
    log(f"{summary['trials_started']} trials: {summary['trials_completed']} completed, {summary['trials_pruned']} "
        f"pruned, {summary['dropped_by_measurement']} dropped by measurement, {summary['trials_failed']} failed; "
        f"{summary['confirmation_runs']} confirmation runs; {summary['cpu_minutes']:.1f} CPU-minutes; front: "
        f"{len(front)} networks -> {out / 'pareto.csv'}")  # fmt: skip
    return summary


def plot_pareto(
    series: dict[str, Sequence[dict[str, Any]]],
    path: str | Path,
    title: str = "",
    *,
    budget_ms: float | None = None,
    dropped: Sequence[float] = (),
) -> Path:
    """Mean proxy top-1 (bars: the spread over seeds, where a row has ``top1_std``) against measured latency for
    each named series of rows, its Pareto front drawn as a line; the budget as a dashed line and the measured
    latencies of the candidates dropped by it (never trained) as crosses along the bottom."""
    from ..utils.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rows in series.items():
        xs, ys = [float(r["measured_ms"]) for r in rows], [float(r["top1"]) for r in rows]
        bars = [float(r.get("top1_std") or 0.0) for r in rows]
        drawn = ax.errorbar(xs, ys, yerr=bars, fmt="o", ms=4, alpha=0.7, capsize=2, label=name)
        front = pareto_front([{**r, "measured_ms": x, "top1": y} for r, x, y in zip(rows, xs, ys, strict=True)])
        ax.plot([r["measured_ms"] for r in front], [r["top1"] for r in front], color=drawn[0].get_color())
        for r in rows:
            if r["label"] == "base":
                ax.annotate("base", (float(r["measured_ms"]), float(r["top1"])), fontsize=8)
    if budget_ms is not None:
        ax.axvline(budget_ms, color="grey", linestyle="--", linewidth=1, label="budget")
    if dropped:
        bottom = ax.get_ylim()[0]
        ax.scatter(list(dropped), [bottom] * len(dropped), marker="x", color="grey", label="dropped: measured over")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("proxy top-1 (%), mean ± sd over seeds")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, Path(path))
    return Path(path)

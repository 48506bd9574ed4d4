"""The benchmark's three pictures: speed against accuracy (with the Pareto front), speed against GMACs, and where
each model's forward time goes beside where its multiply-adds are."""

from __future__ import annotations

from pathlib import Path

from ..utils.plotting import pyplot, save_figure
from .results import BenchReport, BenchResult
from .trace import KINDS

__all__ = ["pareto_front", "plot_gmacs", "plot_layers", "plot_report", "plot_top1"]


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (speed, accuracy) points that no other point beats on both, fastest first."""
    front: list[tuple[float, float]] = []
    for speed, acc in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or acc > front[-1][1]:
            front.append((speed, acc))
    return front


def _rows(report: BenchReport) -> list[BenchResult]:
    """convscale's rows in one mode: inference when measured, else training."""
    ours = [r for r in report.results if r.impl == "convscale"]
    mode = "infer" if any(r.mode == "infer" for r in ours) else "train"
    return [r for r in ours if r.mode == mode]


def _subtitle(report: BenchReport, rows: list[BenchResult]) -> str:
    s = report.settings
    mode = rows[0].mode if rows else s.mode
    return f"{report.device}, {s.dtype}, {mode}, batch {rows[0].batch if rows else s.batch}"


def plot_top1(path: Path, report: BenchReport) -> None:
    """Measured throughput against published ImageNet top-1, the Pareto front drawn: the papers' first figure with
    measured speed in place of FLOPs."""
    plt = pyplot()
    rows = [r for r in _rows(report) if r.top1 is not None]
    fig, ax = plt.subplots(figsize=(7, 5))
    if rows:
        ax.scatter([r.img_s for r in rows], [r.top1 for r in rows], zorder=3)
        for r in rows:
            ax.annotate(r.model, (r.img_s, r.top1), textcoords="offset points", xytext=(4, 4), fontsize=8)
        front = pareto_front([(r.img_s, r.top1) for r in rows])
        ax.plot(*zip(*front, strict=True), linestyle="--", color="C3", label="Pareto front", zorder=2)
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no model here has a published top-1", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("measured throughput (images/s, log); models without a published top-1 are left out")
    ax.set_ylabel("published ImageNet top-1 (%)")
    ax.set_title(f"Accuracy vs measured speed\n{_subtitle(report, rows)}", fontsize=10)
    ax.grid(True, alpha=0.3)
    save_figure(fig, path)


def plot_gmacs(path: Path, report: BenchReport) -> None:
    """GMACs against measured throughput, with lines of constant achieved rate (fractions of the matmul peak): a
    model below another's line does less work per second — FLOPs are not speed."""
    plt = pyplot()
    rows = _rows(report)
    fig, ax = plt.subplots(figsize=(7, 5))
    xs, ys = [r.gmacs for r in rows], [r.img_s for r in rows]
    ax.scatter(xs, ys, zorder=3)
    for r in rows:
        ax.annotate(
            f"{r.model} ({100 * r.peak_fraction:.0f}%)",
            (r.gmacs, r.img_s),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
    if rows and min(xs) > 0:
        lo, hi = min(xs) / 1.5, max(xs) * 1.5
        scale = 3 if rows[0].mode == "train" else 1
        for fraction in (0.05, 0.2, 1.0):
            rate = fraction * report.peak_gmac_s / scale
            ax.plot([lo, hi], [rate / lo, rate / hi], linestyle=":", color="grey", linewidth=1)
            ax.annotate(f"{100 * fraction:g}% of matmul peak", (hi, rate / hi), fontsize=7, color="grey")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("GMACs per image (multiply-adds, the papers' FLOPs)")
    ax.set_ylabel("measured throughput (images/s)")
    ax.set_title(f"FLOPs are not speed (in brackets: % of the matmul peak)\n{_subtitle(report, rows)}", fontsize=10)
    ax.grid(True, alpha=0.3, which="both")
    save_figure(fig, path)


def plot_layers(path: Path, report: BenchReport) -> None:
    """Per model, two stacked bars: each layer kind's share of the multiply-adds and of the forward time."""
    plt = pyplot()
    rows = [r for r in report.layers if r.group == "kind"]
    models = list(dict.fromkeys(r.model for r in rows))
    fig, ax = plt.subplots(figsize=(9, 0.9 * len(models) + 1.6))
    colours = {k: f"C{i}" for i, k in enumerate(KINDS)}
    labels, y = [], 0.0
    ticks = []
    for model in models:
        mine = {r.name: r for r in rows if r.model == model}
        for label, share in (("time", "time_share"), ("GMACs", "gmacs_share")):
            left = 0.0
            for kind in KINDS:
                if kind in mine and getattr(mine[kind], share) > 0:
                    width = 100 * getattr(mine[kind], share)
                    ax.barh(y, width, left=left, color=colours[kind], edgecolor="white", linewidth=0.5)
                    left += width
            labels.append(f"{model}  {label}")
            ticks.append(y)
            y += 1
        y += 0.6
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share (%)")
    present = [k for k in KINDS if any(r.name == k for r in rows)]
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[k]) for k in present]
    ax.legend(
        handles, present, fontsize=7, ncol=min(5, max(1, len(present))), loc="upper center", bbox_to_anchor=(0.5, -0.12)
    )
    ax.set_title("Where the forward time goes vs where the multiply-adds are", fontsize=10)
    save_figure(fig, path)


def plot_report(report: BenchReport, out: Path) -> list[Path]:
    """Write the plots that the report has data for; returns their paths."""
    out = Path(out)
    paths = [out / "bench_top1.png", out / "bench_gmacs.png"]
    plot_top1(paths[0], report)
    plot_gmacs(paths[1], report)
    if report.layers:
        paths.append(out / "bench_layers.png")
        plot_layers(paths[-1], report)
    return paths

"""The run folder's curves: loss, top-1 and learning rate per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..methods.progressive import REGULARIZERS
from ..utils.plotting import pyplot, save_figure

__all__ = ["draw", "plot_history", "plot_schedule"]


def draw(plot: str, path: Path, data: Any) -> None:
    """Draw one of the run folder's plots (``"history"``: curves.png, ``"schedule"``); without matplotlib (the
    optional ``[plot]`` extra) say so once and go on."""
    from ..utils.extras import note_missing

    try:
        {"history": plot_history, "schedule": plot_schedule}[plot](path, data)
    except ImportError as e:
        note_missing(e, "plots")


def plot_history(path: Path, history: list[dict[str, Any]]) -> None:
    plt = pyplot()
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key in [k for k in history[-1] if k.endswith("_loss")]:
        axes[0].plot(epochs, [row.get(key) for row in history], marker=".", label=key.removesuffix("_loss"))
    for key in [k for k in history[-1] if k.endswith("_top1")]:
        axes[1].plot(epochs, [row.get(key) for row in history], marker=".", label=key.removesuffix("_top1"))
    axes[2].plot(epochs, [row["lr"] for row in history], marker=".")
    for ax, title in zip(axes, ("loss", "top-1 (%)", "learning rate at epoch end"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    save_figure(fig, path)


def plot_schedule(path: Path, stages) -> None:
    """The progressive schedule: image size and each regularizer against epochs, one step per stage."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    edges = [s.start_epoch for s in stages] + [stages[-1].end_epoch]

    def steps(values):
        return [v for v in values for _ in (0, 1)]

    xs = [e for i, e in enumerate(edges[:-1]) for e in (e, edges[i + 1])]
    axes[0].plot(xs, steps([s.image_size for s in stages]), marker=".")
    axes[0].set_title("image size (px)")
    for r in REGULARIZERS:
        scale = f" x {r.plot_scale:g}" if r.plot_scale != 1 else ""
        axes[1].plot(xs, steps([s.values[r.name] * r.plot_scale for s in stages]), label=r.label + scale)
    axes[1].set_title("regularization")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    save_figure(fig, path)

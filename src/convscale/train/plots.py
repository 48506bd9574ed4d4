"""The run folder's curves: loss, top-1 and learning rate per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plotting import pyplot, save_figure

__all__ = ["plot_history"]


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

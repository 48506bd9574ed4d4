"""Signal propagation plots (Brock et al., 2021a, §3): how a freshly initialized network scales its activations.

A unit Gaussian batch goes through the model; at the output of every residual block we record the average channel
squared mean and the average channel variance (over batch and space). A well-scaled network keeps both near their
expected values; an unnormalized ResNet without care sees them explode with depth. For normalizer-free blocks the
analytically expected variance (from the blocks' α/β bookkeeping) is recorded beside the measurement.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..layers import BasicBlock, Bottleneck, FusedMBConv, InvertedBottleneck, MBConv
from ..layers.nf_block import NFBlock

__all__ = ["BlockSignal", "plot_signal", "signal_propagation", "write_signal_csv"]


@dataclass(frozen=True)
class BlockSignal:
    model: str
    block: int  # residual block index, from the input
    name: str  # module path
    mean_sq: float  # average over channels of the squared channel mean
    var: float  # average over channels of the channel variance
    expected_var: float | None  # analytic, for normalizer-free blocks


def _residual_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from ..models.convnext import ConvNeXtBlock

    kinds = (NFBlock, BasicBlock, Bottleneck, InvertedBottleneck, ConvNeXtBlock, MBConv, FusedMBConv)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds) and getattr(m, "has_skip", True)]


def _expected_var(block: nn.Module) -> float | None:
    if not isinstance(block, NFBlock):
        return None
    before = 1.0 if block.downsample is not None else block.beta**-2  # a transition resets the variance to 1
    return before + block.alpha**2


@torch.no_grad()
def signal_propagation(
    model: nn.Module, *, name: str = "", res: int = 224, batch: int = 8, seed: int = 0
) -> list[BlockSignal]:
    """Statistics of every residual block's output for a unit Gaussian input, in training mode (batch norm uses the
    batch's statistics, as at the start of training). Build the model with ``drop_path_rate=0``."""
    blocks = _residual_blocks(model)
    if not blocks:
        raise ValueError(f"{name or type(model).__name__} has no residual blocks to measure")
    stats: list[BlockSignal] = []

    def hook(module_name: str):
        def record(module: nn.Module, _inp, out: torch.Tensor) -> None:
            out = out.double()
            mean = out.mean(dim=(0, 2, 3))
            var = out.var(dim=(0, 2, 3), unbiased=False)
            stats.append(
                BlockSignal(
                    name, len(stats), module_name, float((mean**2).mean()), float(var.mean()), _expected_var(module)
                )
            )

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in blocks]
    was_training = model.training
    try:
        model.train()
        generator = torch.Generator().manual_seed(seed)
        in_chans = getattr(model, "in_chans", 3)
        model(torch.randn(batch, in_chans, res, res, generator=generator))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return stats


def write_signal_csv(path: Path, rows: list[BlockSignal]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def plot_signal(path: Path, rows: list[BlockSignal]) -> None:
    """Two panels (average channel squared mean, average channel variance) against depth, one line per model."""
    from ..utils.plotting import pyplot, save_figure

    plt = pyplot()
    models = list(dict.fromkeys(r.model for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for model in models:
        mine = [r for r in rows if r.model == model]
        x = [r.block for r in mine]
        axes[0].plot(x, [r.mean_sq for r in mine], marker=".", label=model)
        (line,) = axes[1].plot(x, [r.var for r in mine], marker=".", label=model)
        expected = [r.expected_var for r in mine]
        if all(e is not None for e in expected):
            axes[1].plot(x, expected, linestyle="--", color=line.get_color(), alpha=0.6, label=f"{model} (expected)")
    for ax, title in zip(axes, ("average channel squared mean", "average channel variance"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("residual block")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("Signal propagation at initialization (unit Gaussian input)")
    save_figure(fig, path)

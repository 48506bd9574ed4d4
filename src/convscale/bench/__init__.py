"""Measured speed beside FLOPs: ``convscale.bench.run(models, ...)`` and the ``convscale bench`` command.

Static figures (params, GMACs, conv activations, memory-access cost, arithmetic intensity) come from one traced
forward pass; measured figures (time per batch with its spread, images/s, batch-1 latency, peak memory, achieved
GMAC/s and its fraction of a matmul peak measured in the same run) from interleaved timing, timm alongside when asked.
"""

from .benchmark import run, static_figures
from .plots import plot_report
from .report import format_layers, format_table, write_report
from .results import BenchReport, BenchResult, BenchSettings, LayerRow
from .trace import KINDS, layer_kind, trace_forward

__all__ = [
    "KINDS",
    "BenchReport",
    "BenchResult",
    "BenchSettings",
    "LayerRow",
    "format_layers",
    "format_table",
    "layer_kind",
    "plot_report",
    "run",
    "static_figures",
    "trace_forward",
    "write_report",
]

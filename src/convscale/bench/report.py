"""A benchmark report as a terminal table, CSV and JSON."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

from ..utils.atomic import atomic_write_text
from .results import BenchReport, BenchResult, LayerRow

__all__ = ["format_layers", "format_table", "write_report"]


def _csv_text(rows: list[object], cls: type) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in dataclasses.fields(cls)])
    writer.writeheader()
    writer.writerows(dataclasses.asdict(r) for r in rows)
    return buf.getvalue()


def write_report(report: BenchReport, out: Path) -> list[Path]:
    """``bench.csv`` (one row per model, implementation and mode), ``bench_layers.csv`` (with per-layer figures) and
    ``bench.json`` (all of it, with the settings and the machine) in ``out``; returns the paths written."""
    out = Path(out)
    written = [out / "bench.csv", out / "bench.json"]
    atomic_write_text(written[0], _csv_text(report.results, BenchResult))
    atomic_write_text(written[1], json.dumps(report.to_dict(), indent=1) + "\n")
    if report.layers:
        written.append(out / "bench_layers.csv")
        atomic_write_text(written[-1], _csv_text(report.layers, LayerRow))
    return written


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: BenchReport) -> str:
    s = report.settings
    lines = [
        f"{report.device}, {s.dtype}, channels_last {'on' if s.channels_last else 'off'}"
        + (", compiled" if s.compile else "")
        + (", fused" if s.fuse else "")
        + f"; matmul peak {report.peak_gmac_s:.1f} GMAC/s",
        f"{'model':24s} {'impl':9s} {'mode':5s} {'res':>4s} {'batch':>5s} {'params':>7s} {'GMACs':>6s} "
        f"{'act M':>6s} {'MAC MB':>7s} {'MAC/B':>5s} {'img/s':>8s} {'ms (p10-p90)':>20s} {'lat ms':>7s} "
        f"{'mem MB':>7s} {'GMAC/s':>7s} {'%peak':>5s} {'top-1':>5s} {'vs timm':>7s}",
    ]
    for r in report.results:
        spread = f"{r.median_ms:.1f} ({r.p10_ms:.1f}-{r.p90_ms:.1f})"
        lines.append(
            f"{r.model:24s} {r.impl:9s} {r.mode:5s} {r.res:4d} {r.batch:5d} {r.params / 1e6:6.2f}M {r.gmacs:6.3f} "
            f"{r.activations_m:6.2f} {r.mem_access_mb:7.1f} {r.intensity:5.1f} {r.img_s:8.1f} {spread:>20s} "
            f"{_fmt(r.latency_ms, '7.1f'):>7s} {r.peak_mem_mb:7.0f} {r.gmac_s:7.1f} {100 * r.peak_fraction:5.1f} "
            f"{_fmt(r.top1, '5.1f'):>5s} {_fmt(r.vs_reference, '7.2f'):>7s}" + (f"  ({r.note})" if r.note else "")
        )
    lines += report.notes
    return "\n".join(lines)


def format_layers(report: BenchReport) -> str:
    """Per model: each layer kind's share of forward time beside its share of GMACs and of memory access."""
    lines = []
    for model in dict.fromkeys(r.model for r in report.layers):
        rows = [r for r in report.layers if r.model == model and r.group == "kind"]
        lines.append(f"{model}: forward time by layer kind (per batch; shares of op time, GMACs, memory access)")
        lines.append(f"  {'kind':15s} {'ms':>8s} {'time':>6s} {'GMACs':>6s} {'memory':>6s} {'GMAC/s':>8s}")
        for r in rows:
            lines.append(
                f"  {r.name:15s} {r.ms:8.2f} {100 * r.time_share:5.1f}% {100 * r.gmacs_share:5.1f}% "
                f"{100 * r.mem_share:5.1f}% {r.gmac_s:8.1f}"
            )
    return "\n".join(lines)

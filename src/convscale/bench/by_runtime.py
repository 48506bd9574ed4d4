"""``convscale bench --runtime eager,compile,onnxruntime``: one model in several runtimes, timed in the same
interleaved loop, beside the same static figures, with each runtime's output checked against eager fp32 and its
achieved rate against the peak of its own precision (``deploy.roofline``). The int8 runtimes are calibrated on the
timing batch itself (random images): a speed figure, not an accuracy one — ``convscale deploy`` calibrates on
images and guards the top-1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..deploy.optimize import optimize
from ..deploy.roofline import peak_of, peaks
from ..deploy.runtimes import INT8, check_runtimes
from ..source import resolve
from ..utils.extras import note_missing
from .benchmark import static_figures

__all__ = ["RuntimeRow", "bench_runtimes", "format_runtimes", "write_runtimes"]


@dataclass(frozen=True)
class RuntimeRow:
    model: str
    runtime: str
    res: int
    batch: int
    gmacs: float  # per image
    median_ms: float
    p10_ms: float
    p90_ms: float
    img_s: float
    gmac_s: float
    peak_fraction: float  # of the peak of its precision measured in the same run (deploy.roofline)
    max_rel_error: float  # against eager fp32
    vs_eager: float  # eager's median time over this runtime's: above 1, faster
    precision: str = "fp32"


def bench_runtimes(
    models: Sequence[str], runtimes: Sequence[str], *, res: int | None = None, batch: int = 16, min_time: float = 2.0
) -> list[RuntimeRow]:
    """Each model (any source :func:`convscale.resolve` takes; fused, eval mode) in each runtime this CPU has, at
    ``batch``: :func:`convscale.deploy.optimize`'s candidates beside the static figures. A runtime that is missing
    or fails is left out with one line, as ``deploy`` does."""
    check_runtimes(runtimes)
    found = peaks()
    rows = []
    for name in models:
        src = resolve(name)
        size = res or src.policy.test_res
        x = torch.randn(batch, 3, size, size)
        calibration = [x] if any(r in INT8 for r in runtimes) else None
        result = optimize(
            src.model, x, runtimes=runtimes, tolerance=float("inf"), calibration=calibration, min_time=min_time
        )
        macs = static_figures(result.fused, size, 4).macs
        eager = next(c for c in result.candidates if c.runtime == "eager")
        for c in result.candidates:
            if not c.measured:
                note_missing(ImportError(c.note), f"the {c.runtime} runtime")
                continue
            if c.runtime == "eager" and "eager" not in runtimes:
                continue
            gmac_s = macs * c.img_s / 1e9
            rows.append(
                RuntimeRow(
                    src.name, c.runtime, size, batch, round(macs / 1e9, 4), c.median_ms, c.p10_ms, c.p90_ms,
                    round(c.img_s, 1), round(gmac_s, 2), round(gmac_s * 1e9 / peak_of(c.precision, found), 4),
                    c.max_rel_error, round(eager.median_ms / c.median_ms, 3), c.precision,
                )
            )  # fmt: skip
    return rows


def format_runtimes(rows: list[RuntimeRow]) -> str:
    from ..utils.machine import machine, versions

    found = ", ".join(f"{k}={v}" for k, v in versions("torchao", "openvino", "nncf", "onnxruntime").items())
    head = f"{machine().describe()}\n{found}\n"
    head += f"{'model':24s} {'runtime':18s} {'ms/batch':>9s} {'p10-p90':>15s} {'img/s':>8s} {'GMAC/s':>7s} "
    head += f"{'of peak':>7s} {'max rel err':>11s} {'vs eager':>8s}"
    lines = [head]
    for r in rows:
        spread = f"{r.p10_ms:.1f}-{r.p90_ms:.1f}"
        lines.append(
            f"{r.model:24s} {r.runtime:18s} {r.median_ms:9.2f} {spread:>15s} {r.img_s:8.1f} {r.gmac_s:7.1f} "
            f"{100 * r.peak_fraction:6.1f}% {r.max_rel_error:11.1e} {r.vs_eager:7.2f}x"
        )
    return "\n".join(lines)


def write_runtimes(rows: list[RuntimeRow], folder: Path) -> Path:
    from ..utils.atomic import atomic_write_csv

    return atomic_write_csv(folder / "runtimes.csv", [asdict(r) for r in rows])

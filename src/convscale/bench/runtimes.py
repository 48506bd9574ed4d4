"""``convscale bench --runtime eager,compile,onnxruntime``: one model in several runtimes, timed in the same
interleaved loop, beside the same static figures, with each runtime's output checked against eager fp32."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..extras import note_missing
from ..factory import create_model
from ..fuse import fuse
from ..registry import get_entry
from ..runtimes import build_runner, check_runtimes, max_rel_error, time_runners
from .runner import static_figures
from .timing import matmul_peak

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
    peak_fraction: float  # of the fp32 matmul peak measured in the same run
    max_rel_error: float  # against eager fp32
    vs_eager: float  # eager's median time over this runtime's: above 1, faster


def bench_runtimes(
    models: Sequence[str], runtimes: Sequence[str], *, res: int | None = None, batch: int = 16, min_time: float = 2.0
) -> list[RuntimeRow]:
    """Each model (fused, eval mode, random weights) in each runtime this CPU has, at ``batch``."""
    check_runtimes(runtimes)
    device = torch.device("cpu")
    peak = matmul_peak(device, torch.float32)
    rows = []
    for name in models:
        size = res or get_entry(name).config.test_res
        fused = fuse(create_model(name).eval())
        x = torch.randn(batch, 3, size, size)
        runners = {r: b for r in dict.fromkeys(("eager", *runtimes)) if (b := _runner(r, fused, x, device))}
        with torch.inference_mode():
            want = fused(x).float()
        errors = {k: max_rel_error(r.fn(x), want) for k, r in runners.items()}
        timings = time_runners(runners, x, device, min_time=min_time)
        macs = static_figures(fused, size, 4).macs
        for k, t in timings.items():
            if k == "eager" and "eager" not in runtimes:
                continue
            img_s = batch / t.median
            rows.append(
                RuntimeRow(
                    name, k, size, batch, round(macs / 1e9, 4), round(t.median * 1e3, 3), round(t.p10 * 1e3, 3),
                    round(t.p90 * 1e3, 3), round(img_s, 1), round(macs * img_s / 1e9, 2),
                    round(macs * img_s / peak, 4), errors[k], round(timings["eager"].median / t.median, 3),
                )
            )  # fmt: skip
    return rows


def _runner(name: str, fused: torch.nn.Module, x: torch.Tensor, device: torch.device):
    """The runtime's runner, or None when it is not on this device or its extra is missing (said once)."""
    try:
        return build_runner(name, fused, x, device)
    except ImportError as e:
        note_missing(e, f"the {name} runtime")
        return None


def format_runtimes(rows: list[RuntimeRow]) -> str:
    head = f"{'model':24s} {'runtime':13s} {'ms/batch':>9s} {'p10-p90':>15s} {'img/s':>8s} {'GMAC/s':>7s} "
    head += f"{'of peak':>7s} {'max rel err':>11s} {'vs eager':>8s}"
    lines = [head]
    for r in rows:
        spread = f"{r.p10_ms:.1f}-{r.p90_ms:.1f}"
        lines.append(
            f"{r.model:24s} {r.runtime:13s} {r.median_ms:9.2f} {spread:>15s} {r.img_s:8.1f} {r.gmac_s:7.1f} "
            f"{100 * r.peak_fraction:6.1f}% {r.max_rel_error:11.1e} {r.vs_eager:7.2f}x"
        )
    return "\n".join(lines)


def write_runtimes(rows: list[RuntimeRow], folder: Path) -> Path:
    from ..atomic import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(asdict(rows[0])))
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    return atomic_write_text(folder / "runtimes.csv", buf.getvalue())

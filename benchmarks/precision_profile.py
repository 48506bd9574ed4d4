"""Where one training step's time goes in fp32 and in bf16, and what fraction of each precision's peak it reaches
(results/precision/, the docs' precision page):

    .venv/bin/python benchmarks/precision_profile.py --out results/precision

For a dense model (ResNet-18) and a depthwise one (EfficientNet-B0), at 224 px and batch 16 on this machine's
threads, channels-last, AdamW: the step (forward, backward, update) timed in fp32 and under bf16 autocast,
interleaved (``convscale.utils.timing.measure``), then a few steps of each under ``torch.profiler`` for the top
operators by self time. The step's multiply-adds are three times the forward's (forward, and the two halves of the
backward); the peak is ``deploy.roofline.peaks()`` (the fastest matmul or 3×3 convolution in that precision). Writes
``profile.csv`` (a row per model, precision and top operator) and ``profile.md``.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from common import write_csv
from convscale import create_model
from convscale.counting import count_macs
from convscale.deploy.roofline import peaks
from convscale.train.optimizer import create_optimizer
from convscale.train.steps import StepSettings, train_step
from convscale.utils.machine import machine, versions
from convscale.utils.timing import measure

MODELS = ("resnet18", "efficientnet_b0")
NAMES = {"none": "fp32", "bf16": "bf16"}
CPU = torch.device("cpu")


def steps_of(model_name: str, batch: int, size: int):
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=1000).to(memory_format=torch.channels_last).train()
    optimizer = create_optimizer(model, "adamw", 1e-3, 0.05, 0.9)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,))
    steps = {p: (lambda p=p: train_step(model, x, y, optimizer, StepSettings(amp=p))) for p in NAMES}
    return model, steps


def top_ops(step, count: int, top: int) -> list[tuple[str, float]]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(count):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [(e.key, e.self_cpu_time_total / total) for e in events[:top]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/precision"))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--top", type=int, default=6)
    args = parser.parse_args()
    peak = peaks()
    rows, lines = [], []
    for name in args.models:
        model, steps = steps_of(name, args.batch, args.size)
        with torch.device("meta"):
            macs = 3 * count_macs(create_model(name, num_classes=1000), args.size) * args.batch
        timings = measure(steps, CPU, warmup=2, min_iters=5, min_time=5.0)
        for p, timing in timings.items():
            precision = NAMES[p]
            rate = macs / timing.median
            fraction = rate / peak[precision] if precision in peak else float("nan")
            ops = top_ops(steps[p], 3, args.top)
            lines.append(
                f"| {name} | {precision} | {args.batch / timing.median:.1f} ({args.batch / timing.p90:.1f}–"
                f"{args.batch / timing.p10:.1f}) | {rate / 1e9:.0f} | {peak.get(precision, 0) / 1e9:.0f} | "
                f"{100 * fraction:.1f}% | " + ", ".join(f"`{op}` {100 * share:.0f}%" for op, share in ops) + " |"
            )
            rows += [{"model": name, "precision": precision, "img_s": round(args.batch / timing.median, 2),
                      "gmac_s": round(rate / 1e9, 1), "peak_gmac_s": round(peak.get(precision, 0) / 1e9, 1),
                      "fraction_of_peak": round(fraction, 4), "op": op, "self_share": round(share, 4)}
                     for op, share in ops]  # fmt: skip
        del model
    m = machine()
    head = (f"Machine: {m.cpu}; {' '.join(m.isa)}; {m.threads} threads. {versions('torch')}. {date.today()}. "
            f"Batch {args.batch}, {args.size} px, channels-last, AdamW; the spread is the 10th–90th percentile.\n\n"
            "| model | precision | step img/s | achieved GMAC/s | peak GMAC/s | of peak | top operators (self time) |\n"
            "|---|---|---|---|---|---|---|\n")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "profile.csv", rows)
    (args.out / "profile.md").write_text(head + "\n".join(lines) + "\n")
    print((args.out / "profile.md").read_text())


if __name__ == "__main__":
    main()

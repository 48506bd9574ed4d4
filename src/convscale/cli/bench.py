"""``convscale bench``: measured speed beside FLOPs, and runtimes side by side (``--runtime``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .args import SOURCE_HELP, add_device, bounded, split_list

__all__ = ["add"]


def _cmd_bench(args: argparse.Namespace) -> None:
    from .. import bench

    if args.runtime:
        _bench_runtimes(args)
        return
    from ..deployed import is_deployed

    if any(is_deployed(m) for m in args.models):
        _bench_deployed(args)
        return
    settings = bench.BenchSettings(
        res=args.res,
        batch=args.batch,
        mode=args.mode,
        dtype=args.dtype,
        channels_last=args.channels_last,
        compile=args.compile,
        fuse=args.fuse,
        device=args.device,
        per_layer=args.per_layer,
        compare=args.compare,
        warmup=args.warmup,
        min_iters=args.min_iters,
        min_time=args.min_time,
    )
    report = bench.run(args.models, settings, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(bench.format_table(report))
    if report.layers:
        print(bench.format_layers(report))
    if args.out:
        written = bench.write_report(report, Path(args.out))
        try:
            written += bench.plot_report(report, Path(args.out))
        except ImportError as e:
            from ..utils.extras import note_missing

            note_missing(e, "plots")
        print("wrote " + ", ".join(str(p) for p in written))


def _bench_deployed(args: argparse.Namespace) -> None:
    """``bench DIR``: each deployed folder's form timed at its own batch and size (random images), beside the figure
    deploy measured when it chose it."""
    import torch

    from ..deployed import is_deployed, load
    from ..utils.timing import measure

    if not all(is_deployed(m) for m in args.models):
        raise ValueError("bench times deployed folders alone, or models alone: give one kind")
    for folder in args.models:
        p = load(folder)
        x = torch.randn(p.batch or args.batch or 16, 3, p.folder.spec.res, p.folder.spec.res)
        t = measure({"deployed": lambda m=p.model, x=x: m(x)}, torch.device("cpu"), min_time=args.min_time)["deployed"]
        chosen = next((c for c in p.folder.report.get("candidates", []) if c.get("runtime") == p.runtime), {})
        ms = chosen.get("median_ms")
        then = f"; deploy measured {ms:.2f} ms" if isinstance(ms, int | float) else ""
        spread = f"p10-p90 {t.p10 * 1e3:.2f}-{t.p90 * 1e3:.2f}"
        print(f"{folder}: {p.runtime} ({p.precision}), batch {len(x)} at {x.shape[-1]} px: {t.median * 1e3:.2f} ms "
              f"per batch ({spread}), {len(x) / t.median:.1f} img/s{then}")  # fmt: skip


def _bench_runtimes(args: argparse.Namespace) -> None:
    from ..bench.by_runtime import bench_runtimes, format_runtimes, write_runtimes

    if args.device not in ("auto", "cpu") or args.mode != "infer" or args.dtype != "fp32":
        raise ValueError("--runtime compares inference runtimes on the CPU in fp32 (bf16 is a runtime: eager-bf16)")
    runtimes = split_list(args.runtime)
    rows = bench_runtimes(args.models, runtimes, res=args.res, batch=args.batch or 16, min_time=args.min_time)
    print(format_runtimes(rows))
    if args.out:
        print(f"wrote {write_runtimes(rows, Path(args.out))}")


def add(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="measured speed beside FLOPs: throughput, latency, memory, memory-access cost, time per layer kind",
        description="Benchmark registered models on this machine. Timing is interleaved between contenders; achieved "
        "GMAC/s is compared with a matmul peak measured in the same run, in the same dtype.",
    )
    p.add_argument("models", nargs="+", metavar="SOURCE", help=SOURCE_HELP)
    p.add_argument("--res", type=int, help="input size (default: each model's test resolution)")
    p.add_argument("--batch", type=int, help="batch size (default: 256 on CUDA, 16 elsewhere)")
    p.add_argument("--mode", default="infer", choices=("infer", "train", "both"))
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--compile", action="store_true", help="torch.compile the models (per-layer stays eager)")
    p.add_argument("--fuse", action="store_true", help="measure the deploy.fuse form (inference)")
    add_device(p)
    p.add_argument("--per-layer", action="store_true", help="forward time per layer kind and per stage")
    p.add_argument("--compare", choices=("timm",), help="time timm's model of the same name, interleaved")
    p.add_argument("--runtime", help="compare runtimes instead, e.g. eager,compile,onnxruntime (fused models, CPU)")
    p.add_argument("--warmup", type=bounded(int, 0, 10_000), default=3, help="untimed calls first (default 3)")
    p.add_argument("--min-iters", type=bounded(int, 1, 1_000_000), default=10, help="timed calls at least (10)")
    p.add_argument("--min-time", type=bounded(float, 0, 86_400), default=2.0, help="seconds of timed calls (2)")
    p.add_argument("--out", help="folder for bench.csv, bench.json, bench_layers.csv and the plots")
    p.set_defaults(func=_cmd_bench)

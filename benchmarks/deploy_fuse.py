"""Eval throughput of ``deploy.fuse``d models beside their unfused form, and beside timm, in one process.

    PY benchmarks/deploy_fuse.py repvgg_a0 efficientnet_b0 resnet50 mobilenetv3_large_100 \
        --out results/bench/deploy_fuse.csv

Per model, interleaved (same machine state for every contender): convscale unfused (eval, channels_last), convscale
fused, and, when timm is importable, timm's model in eval mode and channels_last after timm's own
``reparameterize_model`` (which re-parameterizes RepVGG; timm does not fold BN). Reported: median ms per batch,
images/s, fused speed-up over unfused and over timm. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

import convscale
from common import interleaved, write_csv
from convscale.deploy import fuse


def _timm_model(name: str):
    try:
        import timm
        from timm.utils.model import reparameterize_model
    except ImportError:
        return None
    model = timm.create_model(name).eval()
    return reparameterize_model(model).to(memory_format=torch.channels_last)


def bench(name: str, res: int, batch: int, rounds: int, iters: int) -> dict[str, object]:
    model = convscale.create_model(name).eval().to(memory_format=torch.channels_last)
    contenders = {"unfused": model, "fused": fuse(model)}
    theirs = _timm_model(name)
    if theirs is not None:
        contenders["timm"] = theirs
    x = torch.randn(batch, 3, res, res).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        times = interleaved({k: (lambda m=m: m(x)) for k, m in contenders.items()}, rounds, iters)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    row: dict[str, object] = {"model": name, "res": res, "batch": batch, "threads": torch.get_num_threads()}
    for k, v in ms.items():
        row[f"{k}_ms"] = round(v, 2)
        row[f"{k}_img_s"] = round(batch / v * 1e3, 1)
    row["fused_vs_unfused"] = round(ms["unfused"] / ms["fused"], 3)
    row["fused_vs_timm"] = round(ms["timm"] / ms["fused"], 3) if "timm" in ms else ""
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--iters", type=int, default=2)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    rows = []
    for name in args.models:
        row = bench(name, args.res, args.batch, args.rounds, args.iters)
        print(row, flush=True)
        rows.append(row)
    if args.out:
        write_csv(args.out, rows)


if __name__ == "__main__":
    main()

"""Eval-forward speed of convscale models beside timm's, in one process, interleaved.

Run it with a Python that has both (see shared/tools/ref_env.sh, then `PY -m pip install --no-deps -e .`):

    PY benchmarks/compare_timm.py efficientnet_b0 --res 224 --batch 16 --out results/bench/compare_timm.csv

Each round times a few forward passes of ours, then of timm's (order alternating), so both see the same machine
state; the table gives median ms per batch and timm / ours (> 1: convscale is faster). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

import convscale
from common import interleaved, write_csv


def compare(name: str, res: int, batch: int, rounds: int, iters: int, channels_last: bool) -> dict[str, object]:
    try:
        import timm
    except ImportError:
        sys.exit("timm is not installed here; make an environment with shared/tools/ref_env.sh")
    ours = convscale.create_model(name).eval()
    theirs = timm.create_model(name).eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    ours, theirs = ours.to(memory_format=fmt), theirs.to(memory_format=fmt)
    x = torch.randn(batch, 3, res, res).to(memory_format=fmt)
    with torch.inference_mode():
        times = interleaved({"convscale": lambda: ours(x), "timm": lambda: theirs(x)}, rounds, iters)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {
        "model": name,
        "res": res,
        "batch": batch,
        "channels_last": channels_last,
        "threads": torch.get_num_threads(),
        "convscale_ms": round(ms["convscale"], 2),
        "timm_ms": round(ms["timm"], 2),
        "timm_over_convscale": round(ms["timm"] / ms["convscale"], 3),
        "torch": torch.__version__,
        "timm": timm.__version__,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--out", type=Path, help="CSV file to write")
    args = p.parse_args()
    rows = [compare(m, args.res, args.batch, args.rounds, args.iters, args.channels_last) for m in args.models]
    for row in rows:
        print(
            f"{row['model']:24s} res {row['res']} batch {row['batch']}: convscale {row['convscale_ms']:8.1f} ms, "
            f"timm {row['timm_ms']:8.1f} ms, timm/convscale {row['timm_over_convscale']:.3f}"
        )
    if args.out:
        write_csv(args.out, rows)


if __name__ == "__main__":
    main()

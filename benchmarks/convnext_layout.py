"""Which ConvNeXt block layout is faster here, per width: channels-last LayerNorm + Linear MLP (with two permutes),
or LayerNorm over channels + 1×1 convs on (N, C, H, W) (``conv_mlp``)? The two compute the same function. For each
model (atto … base), eval (batch 16) and a training step (batch 8), with channels_last and contiguous input, both
layouts and — where timm is installed — timm's own eager model are timed in one interleaved loop.

    REF_PY benchmarks/convnext_layout.py --out results/bench/convnext_layout.csv

The registered variants take the layout this measured faster (``conv_mlp`` in models/convnext.py). A benchmark,
not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import convscale
from common import interleaved, write_csv
from convscale.utils.machine import machine

MODELS = ["convnext_atto", "convnext_femto", "convnext_pico", "convnext_nano", "convnext_tiny", "convnext_small",
          "convnext_base"]  # fmt: skip


def layouts(name: str) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    linear = convscale.create_model(name, conv_mlp=False)
    conv = convscale.create_model(name, conv_mlp=True)
    conv.load_state_dict({k: v.reshape(conv.state_dict()[k].shape) for k, v in linear.state_dict().items()})
    out = {"linear (N,H,W,C)": linear, "1x1 conv (N,C,H,W)": conv}
    with contextlib.suppress(ImportError):  # timm's eager model beside ours where the environment has timm
        import timm

        out["timm"] = timm.create_model(name)
    return out


def measure(name: str, res: int, batch: int, train_batch: int, rounds: int) -> list[dict]:
    models = layouts(name)
    rows = []
    for fmt in (torch.channels_last, torch.contiguous_format):
        for m in models.values():
            m.to(memory_format=fmt)
        x = torch.randn(batch, 3, res, res).contiguous(memory_format=fmt)
        xt = x[:train_batch]

        def infer(m, x=x):
            with torch.inference_mode():
                m(x)

        def train(m, xt=xt):
            m.zero_grad(set_to_none=True)
            m(xt).sum().backward()

        for mode, fn in (("eval", infer), ("train step", train)):
            for m in models.values():
                m.train(mode != "eval")
            times = interleaved({k: (lambda m=m, fn=fn: fn(m)) for k, m in models.items()}, rounds, 1)
            base = statistics.median(times["linear (N,H,W,C)"])
            for label, ts in times.items():
                rows.append({
                    "model": name, "width": models["linear (N,H,W,C)"].cfg.dims[0], "mode": mode,
                    "input": "channels_last" if fmt == torch.channels_last else "contiguous", "layout": label,
                    "res": res, "batch": batch if mode == "eval" else train_batch,
                    "median_ms": round(statistics.median(ts) * 1e3, 2), "p10_ms": round(min(ts) * 1e3, 2),
                    "vs_linear": round(statistics.median(ts) / base, 3), "threads": torch.get_num_threads(),
                })  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    print(machine().describe(), flush=True)
    rows = []
    for name in args.models:
        got = measure(name, args.res, args.batch, args.train_batch, args.rounds)
        rows += got
        for r in got:
            print(f"{name:15s} {r['mode']:10s} {r['input']:13s} {r['layout']:20s} {r['median_ms']:9.1f} ms "
                  f"x{r['vs_linear']:.3f}", flush=True)  # fmt: skip
        if args.out:
            write_csv(args.out, rows)


if __name__ == "__main__":
    main()

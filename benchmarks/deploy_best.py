"""convscale's fastest correct deployed form against timm's best form, on this machine, interleaved in one process.

Run in the reference environment (timm installed; shared/tools/ref_env.sh), with onnxruntime and onnxscript added:

    REF_PY -m pip install onnx onnxruntime onnxscript tqdm
    REF_PY benchmarks/deploy_best.py --out docs/deploy

For each model (random weights, eval mode) and batch (16 and 1), one interleaved timing loop holds:
- timm eager fp32 and timm's best form: ``torch.compile`` with inductor weight freezing, bf16 autocast,
  channels_last (RepVGG after timm's ``reparameterize_model``);
- convscale's candidates (``deploy.fuse`` first): eager fp32, ``compile-bf16`` (the same compile settings as timm's)
  and ONNX Runtime fp32 — each checked against convscale's fused fp32 output; the chosen form is the fastest within
  ``--tolerance`` (max relative error; bf16 rounds each logit to about 1 in 256, hence 5e-2 by default).

Writes ``deploy_best.csv`` (a row per model, batch and contender) and prints the ratios.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from convscale import create_model
from convscale.bench.runner import static_figures
from convscale.bench.timing import matmul_peak
from convscale.deploy.fuse import fuse
from convscale.deploy.runtimes import Runner, build_runner, max_rel_error, time_runners

MODELS = [("efficientnet_b0", 224), ("tf_efficientnetv2_b0", 224), ("convnext_tiny", 224), ("resnet50", 224),
          ("mobilenetv3_large_100", 224), ("ghostnet_100", 224), ("repvgg_a0", 224), ("dm_nfnet_f0", 192)]  # fmt: skip
OURS = ("eager", "compile-bf16", "onnxruntime")


def timm_runners(name: str, x: torch.Tensor) -> dict[str, Runner]:
    import timm
    from timm.utils.model import reparameterize_model

    model = reparameterize_model(timm.create_model(name).eval()).to(memory_format=torch.channels_last)
    best = torch.compile(model, options={"freezing": True})

    def eager(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x.contiguous(memory_format=torch.channels_last)).float()

    def compiled(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return best(x.contiguous(memory_format=torch.channels_last)).float()

    return {"timm eager": Runner("timm eager", eager), "timm best": Runner("timm best", compiled)}


def bench(name: str, res: int, batch: int, tolerance: float, min_time: float, peak: float) -> list[dict]:
    x = torch.randn(batch, 3, res, res)
    fused = fuse(create_model(name).eval())
    ours = {k: r for k in OURS if (r := build_runner(k, fused, x, torch.device("cpu"))) is not None}
    with torch.inference_mode():
        want = fused(x).float()
    errors = {k: max_rel_error(r.fn(x), want) for k, r in ours.items()}
    runners = {f"convscale {k}": r for k, r in ours.items()} | timm_runners(name, x)
    timings = time_runners(runners, x, torch.device("cpu"), min_time=min_time)
    kept = [k for k in ours if errors[k] <= tolerance]
    chosen = min(kept, key=lambda k: timings[f"convscale {k}"].median)
    macs = static_figures(fused, res, 4).macs
    rows = []
    for label, t in timings.items():
        img_s = batch / t.median
        rows.append({
            "model": name, "res": res, "batch": batch, "contender": label, "median_ms": round(t.median * 1e3, 3),
            "p10_ms": round(t.p10 * 1e3, 3), "p90_ms": round(t.p90 * 1e3, 3), "img_s": round(img_s, 1),
            "gmac_s": round(macs * img_s / 1e9, 2), "peak_fraction": round(macs * img_s / peak, 4),
            "max_rel_error": errors.get(label.removeprefix("convscale "), ""),
            "chosen": label == f"convscale {chosen}",
            "vs_timm_best": round(timings["timm best"].median / t.median, 3),
            "vs_timm_eager": round(timings["timm eager"].median / t.median, 3),
        })  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/deploy")
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 1])
    ap.add_argument("--tolerance", type=float, default=5e-2)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--models", nargs="+", default=[m for m, _ in MODELS])
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    torch.set_num_threads(torch.get_num_threads())
    peak = matmul_peak(torch.device("cpu"), torch.float32)
    sizes = dict(MODELS)
    rows: list[dict] = []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        for batch in args.batches:
            got = bench(name, sizes.get(name, 224), batch, args.tolerance, args.min_time, peak)
            rows += got
            chosen = next(r for r in got if r["chosen"])
            eager = next(r for r in got if r["contender"] == "convscale eager")
            print(f"{name:22s} batch {batch:2d}: chosen {chosen['contender']:24s} {chosen['vs_timm_best']:.2f}x timm "
                  f"best; eager fp32 {eager['vs_timm_eager']:.2f}x timm eager; {100 * chosen['peak_fraction']:.1f}% "
                  "of the fp32 matmul peak", flush=True)  # fmt: skip
            with open(out / "deploy_best.csv", "w", newline="") as f:  # rewritten after each model: partial results
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)


if __name__ == "__main__":
    main()

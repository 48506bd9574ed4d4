"""convscale's fastest correct deployed form, int8 included, against timm's best form on this machine, interleaved.

Run in the reference environment (timm installed; shared/tools/ref_env.sh), with the deploy extras added:

    REF_PY -m pip install onnx onnxruntime onnxscript tqdm torchao==0.18.0 openvino==2026.4.1 nncf==3.4.0
    REF_PY benchmarks/deploy_best.py --out results/deploy

For each model (random weights, eval mode) and batch (16 and 1), one interleaved timing loop holds:
- timm's forms: eager fp32, ``torch.compile`` with inductor weight freezing in fp32, and the same in bf16 autocast
  where this CPU has native bf16 (AVX-512 BF16 or AMX) — all channels_last, RepVGG after timm's
  ``reparameterize_model``; "timm best" is the fastest of them *in this run*;
- convscale's candidates (``deploy.fuse`` first), each a runtime ``convscale deploy`` can pick: by default every one
  of ``deploy.runtimes.RUNTIMES``. The floating-point forms are checked against convscale's fused fp32 output
  (``--tolerance``); the int8 forms are calibrated on ``--calibration`` random batches — a speed figure: their
  accuracy is measured on trained runs (``--accuracy``), not here.

Each row has its precision's peak (``deploy.roofline``: fp32, native bf16, int8, measured in the same run) and the
achieved fraction of it. Writes ``deploy_best.csv`` and ``machine.md`` (the CPU, its instruction sets, the versions).
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
from convscale.counting import count_macs
from convscale.deploy.fuse import fuse
from convscale.deploy.roofline import peak_of, peaks
from convscale.deploy.runtimes import INT8, RUNTIMES, Runner, build_runner, max_rel_error, time_runners
from convscale.utils.machine import machine, versions

MODELS = [("efficientnet_b0", 224), ("tf_efficientnetv2_b0", 224), ("convnext_tiny", 224), ("resnet50", 224),
          ("mobilenetv3_large_100", 224), ("ghostnet_100", 224), ("repvgg_a0", 224), ("dm_nfnet_f0", 192)]  # fmt: skip
CPU = torch.device("cpu")


def timm_runners(name: str) -> dict[str, tuple[Runner, str]]:
    """timm's forms, each with its precision."""
    import copy

    import timm
    from timm.utils.model import reparameterize_model

    model = reparameterize_model(timm.create_model(name).eval()).to(memory_format=torch.channels_last)
    forms = {
        "timm eager": (model, False),
        "timm compile": (torch.compile(copy.deepcopy(model), options={"freezing": True}), False),
    }
    if machine().native_bf16:
        forms["timm compile-bf16"] = (torch.compile(copy.deepcopy(model), options={"freezing": True}), True)
    out = {}
    for label, (m, bf16) in forms.items():

        def run(x: torch.Tensor, m=m, bf16=bf16) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return m(x.contiguous(memory_format=torch.channels_last)).float()

        out[label] = (Runner(label, run), "bf16" if bf16 else "fp32")
    return out


def ours(name: str, x: torch.Tensor, runtimes, calibration: int) -> tuple[dict[str, Runner], dict[str, float], dict]:
    fused = fuse(create_model(name).eval())
    cal = [torch.randn_like(x) for _ in range(calibration)]
    runners, notes = {}, {}
    for k in runtimes:
        try:
            r = build_runner(k, fused, x, CPU, calibration=cal if k in INT8 else None)
            if r is not None:
                r.fn(x)  # compiles here, so a failure is a note
                runners[k] = r
        except Exception as e:  # a runtime that fails is reported, the benchmark goes on
            notes[k] = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
    with torch.inference_mode():
        want = fused(x).float()
    errors = {k: max_rel_error(r.fn(x), want) for k, r in runners.items()}
    return runners, errors, notes | {"_macs": count_macs(fused, x.shape[-1])}


def bench(name: str, res: int, batch: int, args, found: dict[str, float]) -> list[dict]:
    x = torch.randn(batch, 3, res, res)
    mine, errors, notes = ours(name, x, args.runtimes, args.calibration)
    macs = notes.pop("_macs")
    theirs = timm_runners(name)
    runners = {f"convscale {k}": r for k, r in mine.items()} | {k: r for k, (r, _) in theirs.items()}
    timings = time_runners(runners, x, CPU, min_time=args.min_time)
    best_timm = min((k for k in theirs), key=lambda k: timings[k].median)
    kept = [k for k in mine if k in INT8 or errors[k] <= args.tolerance]
    chosen = min(kept, key=lambda k: timings[f"convscale {k}"].median)
    rows = []
    for label, t in timings.items():
        key = label.removeprefix("convscale ")
        precision = mine[key].precision if key in mine else theirs[label][1]
        img_s = batch / t.median
        peak = peak_of(precision, found)
        rows.append({
            "model": name, "res": res, "batch": batch, "contender": label, "precision": precision,
            "median_ms": round(t.median * 1e3, 3), "p10_ms": round(t.p10 * 1e3, 3), "p90_ms": round(t.p90 * 1e3, 3),
            "img_s": round(img_s, 1), "gmac_s": round(macs * img_s / 1e9, 2),
            "peak_fraction": round(macs * img_s / peak, 4) if peak else "",
            "max_rel_error": errors.get(key, ""), "chosen": label == f"convscale {chosen}",
            "timm_best_form": best_timm, "vs_timm_best": round(timings[best_timm].median / t.median, 3),
            "vs_timm_eager": round(timings["timm eager"].median / t.median, 3), "note": "",
        })  # fmt: skip
    rows += [
        {"model": name, "res": res, "batch": batch, "contender": f"convscale {k}", "note": n} for k, n in notes.items()
    ]
    return rows


def write_machine(out: Path, found: dict[str, float]) -> None:
    m = machine()
    found_versions = versions("timm", "torchao", "openvino", "nncf", "onnxruntime")
    lines = [
        f"- CPU: {m.cpu}, {m.threads} threads",
        f"- instruction sets: {' '.join(m.isa) or 'none of AVX2+'}",
        "- peaks (GMAC/s): " + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in found.items()),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in found_versions.items()),
    ]
    (out / "machine.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/deploy")
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 1])
    ap.add_argument("--tolerance", type=float, default=5e-2)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--calibration", type=int, default=2, help="random calibration batches for the int8 forms")
    ap.add_argument("--models", nargs="+", default=[m for m, _ in MODELS])
    ap.add_argument("--runtimes", nargs="+", default=[r for r in RUNTIMES if r != "eager-bf16"])
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    found = peaks()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_machine(out, found)
    print(machine().describe(), {k: round(v / 1e9) for k, v in found.items()}, flush=True)
    sizes = dict(MODELS)
    rows: list[dict] = []
    for name in args.models:
        for batch in args.batches:
            got = bench(name, sizes.get(name, 224), batch, args, found)
            rows += got
            chosen = next(r for r in got if r.get("chosen"))
            print(f"{name:22s} batch {batch:2d}: chosen {chosen['contender']:30s} {chosen['vs_timm_best']:.2f}x "
                  f"{chosen['timm_best_form']}; {100 * (chosen['peak_fraction'] or 0):.1f}% of the "
                  f"{chosen['precision']} peak", flush=True)  # fmt: skip
            fields = list(dict.fromkeys(k for r in rows for k in r))
            with open(out / "deploy_best.csv", "w", newline="") as f:  # rewritten after each model: partial results
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)


if __name__ == "__main__":
    main()

"""The top-1 each deployment form keeps, on a trained run of each family: the eight models of ``deploy_best.py``
trained briefly from scratch on scikit-learn's digits (an ImageFolder, 64 px: the speed at 224 px does not depend
on the weights, the accuracy at 64 px does), then ``convscale deploy`` on the run — every int8 candidate calibrated
on 320 of the run's training images and scored on its 797 validation images against fp32 (one image = 0.125
points). Where an int8 form misses the guard, the deploy is repeated with ``--int8-keep auto`` (the per-block
sensitivity, and the fewest blocks kept in higher precision).

    .venv/bin/pip install scikit-learn      # a benchmark dependency only: its bundled digits, no download
    .venv/bin/python benchmarks/int8_accuracy.py --out results/deploy
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import write_csv
from convscale.deploy import deploy_model
from convscale.deploy.quantize import QuantSettings
from convscale.deploy.runtimes import INT8
from convscale.train import fit, load_config
from convscale.utils.machine import machine
from finetune_digits import write_digits

MODELS = ["efficientnet_b0", "tf_efficientnetv2_b0", "convnext_tiny", "resnet50", "mobilenetv3_large_100",
          "ghostnet_100", "repvgg_a0", "dm_nfnet_f0"]  # fmt: skip
RUNTIMES = ("eager", "compile-bf16", "openvino", *INT8)


def train(model: str, data: Path, work: Path, epochs: int) -> Path:
    cfg = load_config(
        model=model, data=str(data), epochs=epochs, batch_size=32, train_res=64, test_res=64, lr=2e-3,
        warmup_epochs=1, crop_scale=0.35, ema=False, seed=0, workers=0, out=str(work), name=model,
    )  # fmt: skip
    return fit(cfg, log=lambda *_: None).run_dir


def deploy(run: Path, out: Path, settings: QuantSettings) -> dict:
    return deploy_model(
        str(run), str(out), batch=16, runtimes=RUNTIMES, calibration_images=320, settings=settings, min_time=0.2,
        force=True,
    )  # fmt: skip


def rows_of(model: str, report: dict, pass_: str) -> list[dict]:
    by = {c["runtime"]: c for c in report["candidates"]}
    base = by["eager"]["top1"]
    return [
        {
            "model": model,
            "pass": pass_,
            "runtime": c["runtime"],
            "precision": c["precision"],
            "fp32_top1": base,
            "top1": c["top1"],
            "drop": None if c["top1"] is None else round(base - c["top1"], 3),
            "agreement": c["agreement"],
            "kept": c["kept"],
            "why": c["note"] or c["rejected"],
            "settings": c["settings"],
            "chosen_at_64px": c["runtime"] == report["choice"],
        }
        for c in report["candidates"]
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("results/deploy"))
    p.add_argument("--work", type=Path, default=Path("/tmp/int8_accuracy"))
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--epochs", type=int, default=8)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    print(machine().describe(), flush=True)
    data = write_digits(args.work / "digits", 100, seed=0)
    rows: list[dict] = []
    for model in args.models:
        run = train(model, data, args.work / "runs", args.epochs)
        got = rows_of(model, deploy(run, args.work / "deploy" / model, QuantSettings()), "default")
        if any(r["runtime"] in INT8 and not r["kept"] and "points below" in r["why"] for r in got):
            auto = deploy(run, args.work / "deploy" / f"{model}-auto", QuantSettings(keep=("auto",)))
            got += [r for r in rows_of(model, auto, "int8-keep auto") if r["runtime"].startswith("inductor")]
            got[-1]["why"] = (got[-1]["why"] + f"; sensitivity: {auto.get('sensitivity')}").strip("; ")
        rows += got
        for r in got:
            if r["runtime"] in INT8 or r["runtime"] == "eager":
                print(f"{model:22s} {r['pass']:14s} {r['runtime']:19s} top-1 {r['top1']} (fp32 {r['fp32_top1']}) "
                      f"agree {r['agreement']} kept {r['kept']} {r['why'][:90]}", flush=True)  # fmt: skip
        write_csv(args.out / "int8_accuracy.csv", rows)


if __name__ == "__main__":
    main()

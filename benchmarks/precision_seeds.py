"""Does bf16 train to fp32's accuracy? Seeds × precisions, measured on this machine (results/precision/, the docs'
precision page):

    .venv/bin/pip install scikit-learn      # a benchmark dependency only: its bundled digits, no download
    .venv/bin/python benchmarks/precision_seeds.py --out results/precision

For each dataset (synthetic-shapes, and scikit-learn's handwritten digits as an ImageFolder read through the decoded-
image cache), each model (ResNet-18, ConvNeXt-atto, EfficientNet-B0) and each seed, one short run in fp32
(``--amp none``) and one in bf16 (``--amp bf16``), back to back so that machine noise falls on both alike; EMA, mixup
and CutMix on. Also what ``--amp auto`` chooses for each (its probe's two figures). Writes ``seeds.csv`` (a row per
run: final raw and EMA top-1, img/s, wall time) and ``summary.md``: mean ± sd over the seeds per model, precision and
dataset, and the verdict per model: bf16 is "within the seed spread" when its mean EMA top-1 lies within the range of
fp32's seeds widened by one fp32 standard deviation (and the other way round).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from common import write_csv
from convscale import create_model
from convscale.train import fit, load_config
from convscale.train.optimizer import create_optimizer
from convscale.train.precision import MARGIN, probe_speeds
from convscale.utils.machine import machine, versions

MODELS = ("resnet18", "convnext_atto", "efficientnet_b0")
NAMES = {"none": "fp32", "bf16": "bf16"}
#: each dataset's run: a short schedule at 32 px with EMA, mixup and CutMix
SETTINGS = {
    "synthetic-shapes": {"epochs": 6, "batch_size": 64, "shapes_train": 4000, "shapes_val": 1000},
    "digits": {"epochs": 15, "batch_size": 32, "cache_res": 32, "train_res": 32, "test_res": 32},
}
COMMON = {"mixup": 0.2, "cutmix": 0.2, "ema": True, "workers": 0, "lr": 2e-3, "warmup_epochs": 1}


def auto_choice(model: str, batch: int) -> dict[str, float]:
    """What ``--amp auto``'s probe measures for ``model`` at 32 px and ``batch`` (fp32 and bf16 img/s)."""
    net = create_model(model, num_classes=10).to(memory_format=torch.channels_last)
    speeds = probe_speeds(
        net, lambda m: create_optimizer(m, "adamw", 2e-3, 0.05, 0.9), ["none", "bf16"], batch=batch, size=32,
        classes=10, channels_last=True, device=torch.device("cpu"),
    )  # fmt: skip
    return speeds


def one_run(model: str, data: str, amp: str, seed: int, out: Path) -> dict:
    start = time.perf_counter()
    name = f"{Path(data).name}-{model}-{NAMES[amp]}-{seed}"
    cfg = load_config(None, model=model, data=data, amp=amp, seed=seed, out=str(out), name=name,
                      **COMMON, **SETTINGS[Path(data).name])  # fmt: skip
    result = fit(cfg, log=lambda *_: None)
    m = result.metrics
    return {"dataset": Path(data).name, "model": model, "precision": NAMES[amp], "seed": seed,
            "val_top1": m["val_top1"], "ema_top1": m["ema_top1"], "img_s": m["img_s"],
            "wall_s": round(time.perf_counter() - start, 1)}  # fmt: skip


def verdict(fp32: list[float], bf16: list[float]) -> str:
    sd = statistics.stdev(fp32) if len(fp32) > 1 else 0.0
    lo, hi = min(fp32) - sd, max(fp32) + sd
    mean = statistics.mean(bf16)
    return "within the seed spread" if lo <= mean <= hi else ("above" if mean > hi else "below") + " the seed spread"


def summarize(rows: list[dict], probes: dict[tuple[str, str], dict[str, float]]) -> str:
    m = machine()
    lines = [f"Machine: {m.cpu}; {' '.join(m.isa)}; {m.threads} threads. {versions('torch')}. {date.today()}.", "",
             "| dataset | model | fp32 EMA top-1 | bf16 EMA top-1 | fp32 img/s | bf16 img/s | bf16/fp32 | "
             "--amp auto (probe fp32 / bf16 img/s) | verdict |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (dataset, model), speeds in probes.items():
        by = {p: [r for r in rows if (r["dataset"], r["model"], r["precision"]) == (dataset, model, p)]
              for p in ("fp32", "bf16")}  # fmt: skip
        if not all(by.values()):
            continue
        top = {p: [r["ema_top1"] for r in v] for p, v in by.items()}
        rate = {p: statistics.mean(r["img_s"] for r in v) for p, v in by.items()}
        cell = {p: f"{statistics.mean(t):.2f} ± {statistics.stdev(t) if len(t) > 1 else 0:.2f}" for p, t in top.items()}
        ratio = speeds["bf16"] / speeds["none"]
        auto = "bf16" if ratio >= MARGIN else "fp32"
        lines.append(
            f"| {dataset} | {model} | {cell['fp32']} | {cell['bf16']} | {rate['fp32']:.0f} | {rate['bf16']:.0f} | "
            f"{rate['bf16'] / rate['fp32']:.2f}x | {auto} ({speeds['none']:.0f} / {speeds['bf16']:.0f}) | "
            f"{verdict(top['fp32'], top['bf16'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/precision"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--datasets", nargs="+", default=["synthetic-shapes", "digits"])
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from finetune_digits import write_digits

    rows, probes = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for dataset in args.datasets:
            data = str(write_digits(work / "digits", 60, 0)) if dataset == "digits" else dataset
            for model in args.models:
                probes[(dataset, model)] = auto_choice(model, SETTINGS[dataset]["batch_size"])
                for seed in args.seeds:
                    for amp in ("none", "bf16") if seed % 2 == 0 else ("bf16", "none"):
                        rows.append(one_run(model, data, amp, seed, work / "runs"))
                        print(rows[-1], flush=True)
                        write_csv(args.out / "seeds.csv", rows)
    (args.out / "summary.md").write_text(summarize(rows, probes))
    print((args.out / "summary.md").read_text())


if __name__ == "__main__":
    main()

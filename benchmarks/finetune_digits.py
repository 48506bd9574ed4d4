"""Fine-tuning against training from scratch, measured on this machine (results in results/finetune/, the docs'
fine-tuning section):

    .venv/bin/pip install scikit-learn      # a benchmark dependency only: its bundled digits, no download
    .venv/bin/python benchmarks/finetune_digits.py --out results/finetune

1. Pretrain ResNet-18 on the built-in synthetic-shapes (the ``make demo`` run: 10 epochs, 32 px).
2. Write scikit-learn's handwritten digits (1,797 8×8 images, 10 classes) as an ImageFolder of 32 px PNGs: a few
   training images per class (``--train-per-class``, default 30), every other image in val/.
3. Train the same model on the digits with the same recipe and epochs three ways, for each of ``--seeds`` (0, 1, 2;
   the seeds interleaved, so machine noise falls on every start alike): from scratch; from the synthetic-shapes run
   (``--pretrained RUN``: a fresh classifier for the digits); and from it with a head-only warm-up epoch and
   layer-wise lr decay (``--freeze-epochs 1 --layer-decay 0.8``).

Writes ``results.csv`` (a row per run and epoch: val and EMA top-1, wall time), ``finetune.png`` (mean top-1 per
epoch, the band from the worst to the best seed) and ``summary.md`` (the tables of docs/results/finetune.md).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from PIL import Image

from convscale.train import fit, load_config

MODEL = "resnet18"


def digit_images(train_per_class: int, rng: np.random.Generator):
    """sklearn's digits split per class (the first ``train_per_class`` of a permutation drawn from ``rng`` to train,
    the rest to validate): (split, label, index, 8 × 8 grey PIL image with 0–16 scaled to 0–255), class by class."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("this benchmark needs scikit-learn: .venv/bin/pip install scikit-learn") from None
    digits = load_digits()
    for label in range(10):
        idx = rng.permutation(np.flatnonzero(digits.target == label))
        for split, part in (("train", idx[:train_per_class]), ("val", idx[train_per_class:])):
            for i in part:
                yield split, label, i, Image.fromarray((digits.images[i] * (255 / 16)).astype(np.uint8))


def write_digits(root: Path, train_per_class: int, seed: int, size: int = 32) -> Path:
    """sklearn's digits as ``root/{train,val}/<digit>/<n>.png``, ``size`` px RGB (0–16 grey levels scaled to 0–255)."""
    for split, label, i, grey in digit_images(train_per_class, np.random.default_rng(seed)):
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        grey.resize((size, size), Image.Resampling.BICUBIC).convert("RGB").save(folder / f"{i}.png")
    return root


def run(name: str, work: Path, **keys) -> tuple[Path, list[dict], float]:
    cfg = load_config(model=MODEL, out=str(work), name=name, **keys)
    start = time.monotonic()
    result = fit(cfg)
    seconds = time.monotonic() - start
    with open(result.run_dir / "metrics.csv") as f:
        return result.run_dir, list(csv.DictReader(f)), seconds


def plot(rows: list[dict], path: Path, train_images: int) -> None:
    """The mean EMA top-1 per epoch of each start, the band from the worst to the best seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for variant in dict.fromkeys(r["variant"] for r in rows):
        epochs = sorted({r["epoch"] for r in rows if r["variant"] == variant})
        per = [[r["ema_top1"] for r in rows if r["variant"] == variant and r["epoch"] == e] for e in epochs]
        line = ax.plot(epochs, [sum(v) / len(v) for v in per], marker="o", label=variant)[0]
        ax.fill_between(epochs, [min(v) for v in per], [max(v) for v in per], color=line.get_color(), alpha=0.15)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val top-1 (EMA weights), %")
    ax.set_title(f"{MODEL} on {train_images} handwritten digits: from synthetic-shapes vs from scratch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


VARIANTS = {
    "from scratch": {},
    "fine-tuned (--pretrained RUN)": {"pretrained": True},
    "fine-tuned + head warm-up + layer decay": {"pretrained": True, "freeze_epochs": 1, "layer_decay": 0.8},
}


def summarize(rows: list[dict], times: dict[str, list[float]], header: str) -> str:
    variants = list(VARIANTS)
    lines = [
        header,
        "",
        "| start | final val top-1, EMA (mean, range over seeds) | wall time per run |",
        "|---|---|---|",
    ]
    for v in variants:
        last = max(r["epoch"] for r in rows)
        final = [r["ema_top1"] for r in rows if r["variant"] == v and r["epoch"] == last]
        mean = sum(final) / len(final)
        secs = sum(times[v]) / len(times[v])
        lines.append(f"| {v} | {mean:.1f}% ({min(final):.1f}–{max(final):.1f}) | {secs:.0f} s |")
    lines += ["", "Val top-1 (EMA) per epoch, mean over seeds:", ""]
    lines += ["| epoch | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
    for e in sorted({r["epoch"] for r in rows}):
        cells = []
        for v in variants:
            vals = [r["ema_top1"] for r in rows if r["variant"] == v and r["epoch"] == e]
            cells.append(f"{sum(vals) / len(vals):.1f}")
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/finetune")
    ap.add_argument("--work", default="runs/finetune-bench", help="run folders (not committed)")
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--train-per-class", type=int, default=30)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (the split is seed 0's)")
    args = ap.parse_args()
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    data = write_digits(work / f"digits-{args.train_per_class}", args.train_per_class, seed=0)
    pre_dir, pre_rows, pre_s = run("pretrain-shapes", work, epochs=args.pretrain_epochs, seed=0)
    common = {"data": str(data), "epochs": args.epochs, "batch_size": 32, "train_res": 32, "lr": 2e-3,
              "warmup_epochs": 1}  # fmt: skip
    rows: list[dict] = []
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for seed in args.seeds:
        for label, extra in VARIANTS.items():  # interleaved: each seed runs every start before the next seed
            keys = {**common, **extra, "seed": seed}
            if keys.get("pretrained") is True:
                keys["pretrained"] = str(pre_dir)
            name = label.split(" (")[0].replace(" + ", "-").replace(" ", "-") + f"-s{seed}"
            _, history, seconds = run(name, work, **keys)
            times[label].append(seconds)
            for h in history:
                rows.append({"variant": label, "seed": seed, "epoch": int(h["epoch"]),
                             "val_top1": float(h["val_top1"]), "ema_top1": float(h["ema_top1"]),
                             "elapsed_s": float(h["elapsed_s"])})  # fmt: skip
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    train_images = args.train_per_class * 10
    plot(rows, out / "finetune.png", train_images)
    val = sum(1 for _ in (data / "val").rglob("*.png"))
    header = (
        f"ResNet-18, {train_images} training digits (32 px), {val} val digits, {args.epochs} epochs, batch 32, "
        f"AdamW lr 2e-3 with 1 warm-up epoch, seeds {', '.join(map(str, args.seeds))}. Pretraining on "
        f"synthetic-shapes ({args.pretrain_epochs} epochs, 32 px): {pre_s:.0f} s, "
        f"{float(pre_rows[-1]['ema_top1']):.1f}% on its own val. Command: `python benchmarks/finetune_digits.py "
        f"--out {args.out}` (2-core CPU)."
    )
    text = summarize(rows, times, header)
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

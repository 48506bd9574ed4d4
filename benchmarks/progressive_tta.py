"""Time to accuracy: fixed size vs progressive size vs progressive learning with adaptive regularization
(EfficientNetV2 §4.2), the same model, data and epochs, run one after another on this machine.

    PY benchmarks/progressive_tta.py --out results/progressive            # synthetic-shapes, 32 -> 96 px
    PY benchmarks/progressive_tta.py --data ~/data/imagenette2-320 --res 160 --start 96 --out DIR
    PY benchmarks/progressive_tta.py --as-folder --cache-res 96 --workers 0 --runs fixed adaptive \
        --out results/progressive/cache

- fixed: every epoch at the final size, regularization at its final values;
- size: the image size grows from --start to --res over --stages stages, regularization at its final values;
- adaptive: the size and the regularization (RandAugment magnitude, mixup alpha, dropout) grow together.

Reported per run: wall time (evaluation after every epoch included), images/s and loader wait (share of epoch time)
per stage, final top-1, and the time at which the run first reached the fixed run's final top-1 minus 0.5 points
(``reach_s``, over the fixed run's wall time: ``reach_vs_fixed``); a plot of top-1 against wall time. A benchmark, not
a test.

Sizes are rounded to a multiple of 32 by default: a ResNet's last stage is ceil(size / 32) pixels wide, so 40, 48
and 56 px cost it as much as 64 px would.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from common import write_csv
from convscale.train import TrainConfig, fit

RUNS = {
    "fixed": {},
    "size": {"size_start": "START"},
    "adaptive": {"size_start": "START", "randaug_m_start": 2.0, "mixup_start": 0.0, "drop_rate_start": 0.0},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--data", default="synthetic-shapes")
    p.add_argument("--res", type=int, default=96, help="final training size")
    p.add_argument("--start", type=int, default=32, help="first stage's size")
    p.add_argument("--stages", type=int, default=4)
    p.add_argument("--size-multiple", type=int, default=32)
    p.add_argument("--constant-memory", action="store_true", help="larger batches at the small sizes")
    p.add_argument("--ema", action="store_true", help="also keep (and evaluate) an EMA of the weights")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--shapes-train", type=int, default=5000)
    p.add_argument("--randaug-m", type=float, default=8.0)
    p.add_argument("--mixup", type=float, default=0.2)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--as-folder", action="store_true", help="write synthetic-shapes as JPEG files and train from them")
    p.add_argument("--cache-res", type=int, help="read the files through the decoded-image cache at this size")
    p.add_argument("--workers", type=int, default=2, help="loader processes (0 is fastest with the cache on a CPU)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    common = {
        "model": args.model,
        "data": args.data,
        "epochs": args.epochs,
        "train_res": args.res,
        "shapes_res": args.res,
        "shapes_train": args.shapes_train,
        "randaug_n": 2,
        "randaug_m": args.randaug_m,
        "mixup": args.mixup,
        "drop_rate": args.dropout,
        "size_multiple": args.size_multiple,
        "ema": args.ema,
        "workers": args.workers,
        "out": str(args.out / "runs"),
    }
    if args.as_folder:  # the same images as files: JPEG decoding in the loader, or the cache
        folder = write_shapes(args.out / "runs" / f"shapes-{args.res}px", args.res, args.shapes_train)
        common = {k: v for k, v in common.items() if not k.startswith("shapes_")}
        common |= {"data": str(folder), "crop_scale": 0.6}  # synthetic-shapes' own crop, not a photo's
    if args.cache_res:
        common |= {"cache_res": args.cache_res, "cache_dir": str(args.out / "runs" / "cache")}
        prebuild(TrainConfig(**common), args.out / "cache_build.txt")
    summary, epochs = [], []
    for name in args.runs:
        extra = {k: (args.start if v == "START" else v) for k, v in RUNS[name].items()}
        stages = args.stages if extra else 1
        if extra and args.constant_memory:
            extra["constant_memory"] = True
        cfg = TrainConfig(**common, **extra, stages=stages, name=name)
        result = fit(cfg, log=print)
        rows = list(csv.DictReader((result.run_dir / "metrics.csv").open()))
        for r in rows:
            epochs.append(
                {
                    "run": name,
                    **{
                        k: r[k]
                        for k in (
                            "epoch",
                            "stage",
                            "train_res",
                            "randaug_m",
                            "mixup",
                            "drop_rate",
                            "batch_size",
                            "val_top1",
                            "img_s",
                            "epoch_s",
                            "loader_wait_s",
                            "elapsed_s",
                        )
                    },
                }
            )
        per_stage = {}
        for r in rows:
            per_stage.setdefault(r["stage"], []).append(r)
        row = {
            "run": name,
            "wall_s": float(rows[-1]["elapsed_s"]),
            "val_top1": float(rows[-1]["val_top1"]),
        }
        for stage, rs in per_stage.items():
            row[f"stage{stage}_img_s"] = round(sum(float(r["img_s"]) for r in rs) / len(rs), 1)
            wait = sum(float(r["loader_wait_s"]) for r in rs) / sum(float(r["epoch_s"]) for r in rs)
            row[f"stage{stage}_loader_wait"] = round(wait, 4)
        summary.append(row)
        print(row, flush=True)
    fixed = next((r for r in summary if r["run"] == "fixed"), None)
    for r in summary:
        r["wall_vs_fixed"] = round(r["wall_s"] / fixed["wall_s"], 3) if fixed else ""
        r["top1_vs_fixed"] = round(r["val_top1"] - fixed["val_top1"], 2) if fixed else ""
        if fixed:  # time to the fixed run's final top-1, within 0.5 points
            target = fixed["val_top1"] - 0.5
            hit = [float(e["elapsed_s"]) for e in epochs if e["run"] == r["run"] and float(e["val_top1"]) >= target]
            r["reach_s"] = min(hit) if hit else ""
            r["reach_vs_fixed"] = round(min(hit) / fixed["wall_s"], 3) if hit else ""
    keys = list(dict.fromkeys(k for r in summary for k in r))
    write_csv(args.out / "tta.csv", [{k: r.get(k, "") for k in keys} for r in summary])
    write_csv(args.out / "tta_epochs.csv", epochs)
    plot(args.out / "tta.png", epochs)


def write_shapes(root: Path, res: int, train: int, val: int = 2000) -> Path:
    """synthetic-shapes (seed 0) as an ImageFolder of JPEGs (quality 95): ``root/{train,val}/<shape>/<i>.jpg``."""
    from convscale.data import SHAPE_CLASSES, SyntheticShapes

    if (root / "done").exists():
        return root
    for split, size in (("train", train), ("val", val)):
        shapes = SyntheticShapes(split, size=size, res=res, seed=0)
        for i in range(size):
            img, label = shapes[i]
            folder = root / split / SHAPE_CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            img.save(folder / f"{i}.jpg", quality=95)
    (root / "done").touch()
    return root


def prebuild(cfg: TrainConfig, report: Path) -> None:
    """Build the runs' caches once, before the first run (the build is a one-off; its time is written to ``report``)."""
    from convscale.data import ImageFolder
    from convscale.data.cache import build_cache, cache_folder

    lines = []
    for split in ("train", "val"):
        ds = ImageFolder(Path(cfg.data) / split)
        built = build_cache(ds, cfg.cache_res, cache_folder(ds.root, cfg.cache_res, cfg.cache_dir), workers=cfg.workers)
        lines.append(built.describe())
        print(lines[-1], flush=True)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")


def plot(path: Path, epochs: list[dict]) -> None:
    from convscale.utils.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in dict.fromkeys(r["run"] for r in epochs):
        mine = [r for r in epochs if r["run"] == run]
        ax.plot([float(r["elapsed_s"]) / 60 for r in mine], [float(r["val_top1"]) for r in mine], marker="o", label=run)
    fixed = [r for r in epochs if r["run"] == "fixed"]
    if fixed:
        ax.axhline(float(fixed[-1]["val_top1"]) - 0.5, color="grey", lw=0.8, ls="--", label="fixed final - 0.5")
    ax.set_xlabel("wall time (min)")
    ax.set_ylabel("val top-1 (%)")
    ax.set_title("Time to accuracy: fixed size, progressive size, progressive + adaptive regularization", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    save_figure(fig, path)


if __name__ == "__main__":
    main()

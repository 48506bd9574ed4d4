"""Distillation and SAM, measured: a small student trained alone, distilled (kd, function matching) from a larger
trained teacher, and trained alone with SAM — same data, seed and epochs (``convscale train``'s own loop).

Teacher: the default ``convscale train`` run (ResNet-18, synthetic-shapes, 10 epochs, ~92% top-1), trained here
unless ``--teacher RUN`` names one. Student: ``mobilenetv3_small_100`` (2.5M parameters) at synthetic-shapes' 32 px.

    python benchmarks/distill.py --out results/distill --teacher runs/resnet18-synthetic-shapes   # ~15 min, 2 cores

Writes ``distill.csv`` (a row per run and epoch: val and EMA top-1, epoch seconds, the teacher's seconds),
``summary.csv`` (a row per run: final top-1, best, wall time, seconds per step) and ``curves.png``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from convscale.train import TrainConfig, fit

STUDENT = "mobilenetv3_small_100"
RUNS = {
    "alone": {},
    "kd": {"distill": "kd"},
    "function-matching": {"distill": "function-matching"},
    "alone + SAM 0.05": {"sam": 0.05},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/distill")
    parser.add_argument("--teacher", help="a trained run folder (default: train ResNet-18 on synthetic-shapes)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--student", default=STUDENT, help=f"the student model [{STUDENT}]")
    args = parser.parse_args()
    out = Path(args.out)
    runs = out / "runs"
    teacher = args.teacher or str(fit(TrainConfig(out=str(runs), name="teacher"), log=print).run_dir)
    rows, summary = [], []
    for label, extra in RUNS.items():
        if "distill" in extra:
            extra = {**extra, "teacher": teacher}
        cfg = TrainConfig(
            model=args.student, epochs=args.epochs, seed=args.seed, out=str(runs), name=label.replace(" ", "_"), **extra
        )
        start = time.perf_counter()
        result = fit(cfg, log=lambda *_: None)
        wall = time.perf_counter() - start
        history = list(csv.DictReader(open(result.run_dir / "metrics.csv")))
        for h in history:
            rows.append({"run": label, "epoch": int(h["epoch"]), "val_top1": float(h["val_top1"]),
                         "ema_top1": float(h["ema_top1"]), "epoch_s": float(h["epoch_s"]),
                         "teacher_s": float(h.get("teacher_s") or 0.0)})  # fmt: skip
        steps = int(history[-1]["step"])
        summary.append({
            "run": label, "final_ema_top1": float(history[-1]["ema_top1"]),
            "best_ema_top1": max(float(h["ema_top1"]) for h in history),
            "final_val_top1": float(history[-1]["val_top1"]),
            "wall_s": round(wall, 1), "train_s": round(sum(float(h["epoch_s"]) for h in history), 1),
            "s_per_step": round(sum(float(h["epoch_s"]) for h in history) / steps, 4),
            "teacher_s": round(sum(float(h.get("teacher_s") or 0.0) for h in history), 1),
        })  # fmt: skip
        print(summary[-1], flush=True)
    for name, table in (("distill.csv", rows), ("summary.csv", summary)):
        with open(out / name, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    _plot(rows, out / "curves.png", args.student)


def _plot(rows: list[dict], path: Path, student: str) -> None:
    from convscale.utils.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label in RUNS:
        mine = [r for r in rows if r["run"] == label]
        ax.plot([r["epoch"] for r in mine], [r["ema_top1"] for r in mine], marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("EMA val top-1 (%)")
    ax.set_title(f"{student} on synthetic-shapes: alone, distilled from ResNet-18, with SAM")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


if __name__ == "__main__":
    main()

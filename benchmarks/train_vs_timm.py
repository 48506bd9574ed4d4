"""convscale's training loop against timm's pipeline: the same model, data, recipe and epochs, on this machine.

    .venv/bin/python benchmarks/train_vs_timm.py --out results/train       # both sides, eager and compiled
    .venv/bin/python benchmarks/train_vs_timm.py --precision fp32 ...      # both sides in fp32 (the first study)

The data: scikit-learn's digits as photos made here — each 8×8 digit enlarged to 320 px, centred on a 426 × 320
(Imagenette-320's typical size) noisy, tinted canvas and saved as a JPEG (quality 90) — 100 per class to train, the
other 797 to validate. The model: ResNet-18, 64 px. The recipe on both sides: AdamW (lr 2e-3, weight decay 0.05),
cosine with one warm-up epoch, 40 epochs, batch 64, random-resized crop (area 0.35–1, bicubic), flip, RandAugment
(2 ops, magnitude 9), mixup 0.2, label smoothing 0.1, EMA 0.998, no dropout or drop path, channels-last.

The precision (``--precision``): ``fastest`` (the default) gives each side its fastest form on this machine —
convscale its default ``--amp auto`` (the run's own probe chooses fp32 or bf16), timm ``--amp --amp-dtype bfloat16``
(``timm_pipeline.py --amp-dtype bfloat16``) when the bare training step in timm's environment, measured here before
the runs, is faster in bf16 than in fp32 by convscale's margin (``train.precision.MARGIN``), else fp32 — the same
rule by the same measurement; ``--timm-amp`` forces timm's side. ``fp32``: both sides in fp32.

- convscale: ``python -m convscale train`` with ``--cache-res 73`` (the images decoded once into the memory-mapped
  cache; its build is part of the run's time) read in the main process (``--workers 0``: with the cache, worker
  processes only take the training threads' cores), augmentation, mixup and normalization on the device.
- timm: ``benchmarks/timm_pipeline.py`` in the reference environment (``shared/tools/ref_env.sh``), which assembles
  ``create_dataset``, ``create_loader`` (JPEG decode, crop, flip and RandAugment per image in the workers, the
  prefetcher normalizing), ``Mixup``, ``create_optimizer_v2``, ``create_scheduler_v2`` and ``ModelEmaV3`` as timm's
  ``train.py`` does, validating every epoch as it does. RandAugment is ``rand-m9-n2-inc1-p1.0``: both ops always
  applied, at increasing strength, as the paper (timm's default applies each drawn op with probability 0.5 and
  weakens some ops as the magnitude grows: a lighter recipe). convscale runs the same op list (``--randaug-ops
  timm``: with invert and solarize-add, posterize to 1 bit at m 9). Without RandAugment the two sides end level
  (98.12% vs 98.75%); with it, convscale ended 2–3 points higher until its shear, about the image's centre, was
  made timm's (and the paper's code's), about the top-left corner. The EMA warms up on both sides
  (timm: ``ModelEmaV3(use_warmup=True)``, train.py's ``--model-ema-warmup``; without it, 0.998 ** 600 steps leaves
  30% of the random initialization in timm's average). One loader worker (faster than two here: 264 vs 236 img/s
  in a 2-epoch trial with MobileNetV3).

convscale's trainer keeps freed memory in the process on the CPU (``utils/allocator.py``: glibc's mmap and trim
thresholds raised); ``--timm-keep-freed-memory`` runs timm's side with the same setting through glibc's environment
variables, to show how much of the difference that is (``--sides timm`` runs that side alone).

The two runs of a pair go one after the other (their order alternates between the eager and compiled pairs), alone
on the machine. Reported per run: training images/s per epoch and over the run (the training loop's seconds), the
loader wait, the whole process's wall seconds, the final top-1 of the weights and of the EMA, and the wall time to
accuracy: the seconds from the process's start to the end of the first epoch whose top-1 reaches the pair's target
(the lower of the two runs' final top-1, so that both reach it; the wall time minus the epochs after that one, each
side's epoch timed with its validation). Also, in each environment and precision, the bare training step (random
tensors, no loader) — the two environments' PyTorch builds differ (``+cpu`` here, ``+cu130`` there), and this
separates that from the pipelines. Writes ``vs_timm.csv`` (a row per run, with the CPU and its instruction sets) and
``vs_timm_epochs.csv`` (a row per epoch).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from convscale.utils.machine import machine

HERE = Path(__file__).resolve().parent
REF_PY = Path.home() / ".cache" / "convscale-ref" / "bin" / "python"


def write_photos(root: Path, train_per_class: int = 100, size: tuple[int, int] = (320, 240), seed: int = 0) -> Path:
    """The digits as JPEG photos: ``root/{train,val}/<digit>/<n>.jpg`` (see the module's text)."""
    if (root / "done").exists():
        return root
    from finetune_digits import digit_images

    rng = np.random.default_rng(seed)
    w, h = size
    for split, label, i, grey in digit_images(train_per_class, rng):
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        glyph = np.asarray(grey.resize((h, h), Image.Resampling.BICUBIC), dtype=np.float32)[..., None]
        tint = rng.uniform(0.5, 1.0, 3) * 255
        canvas = np.zeros((h, w, 3), np.float32) + rng.uniform(0, 60, 3)
        left = (w - h) // 2
        canvas[:, left : left + h] += glyph / 255 * (tint - canvas[:, left : left + h])
        canvas += rng.normal(0, 12, canvas.shape)
        Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    (root / "done").touch()
    return root


def convscale_run(args, data: Path, work: Path, compile: bool) -> dict:
    name = f"convscale-{'compile' if compile else 'eager'}"
    flags = {"model": args.model, "data": data, "epochs": args.epochs, "batch-size": 64, "lr": args.lr,
             "crop-scale": args.crop_scale, "weight-decay": 0.05, "warmup-epochs": 1, "drop-rate": 0,
             "drop-path-rate": 0, "randaug-n": 2, "randaug-m": 9, "randaug-ops": "timm", "mixup": 0.2,
             "label-smoothing": 0.1, "ema-decay": 0.998, "train-res": args.res, "test-res": args.res,
             "workers": args.workers,
             "cache-res": round(args.res / 0.875), "cache-dir": work / "cache", "out": work / "runs", "name": name,
             "seed": args.seed, "amp": "auto" if args.precision == "fastest" else "none"}  # fmt: skip
    cmd = [sys.executable, "-m", "convscale", "train", "--ema", *_flags(flags)]
    if compile:
        cmd.append("--compile")
    run_dir = work / "runs" / name
    for old in (run_dir, work / "cache"):  # a fresh run; the cache's build counts in the run's time
        shutil.rmtree(old, ignore_errors=True)
    wall, log = _timed(cmd)
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    elapsed = [0.0] + [float(r["elapsed_s"]) for r in rows]  # the loop's seconds at each epoch's end, validation in
    epochs = [dict(epoch=int(r["epoch"]), images=int(r["train_images"]), seconds=float(r["epoch_s"]),
                   img_s=float(r["img_s"]), loader_wait_s=float(r["loader_wait_s"]), top1=float(r["val_top1"]),
                   ema_top1=float(r["ema_top1"]), with_eval_s=round(elapsed[i + 1] - elapsed[i], 3))
              for i, r in enumerate(rows)]  # fmt: skip
    probe = json.loads((run_dir / "precision.json").read_text()) if (run_dir / "precision.json").exists() else {}
    return dict(side="convscale", compile=compile, precision=rows[-1].get("precision", "fp32"),
                probe_img_s=probe.get("img_s", {}), epochs=_wall_at_ends(epochs, wall), top1=epochs[-1]["top1"],
                ema_top1=epochs[-1]["ema_top1"], wall_s=wall, command=" ".join(cmd), log=log)  # fmt: skip


# glibc's environment variables for what convscale's trainer sets in itself (src/convscale/utils/allocator.py)
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def timm_run(args, data: Path, work: Path, compile: bool) -> dict:
    out = work / f"timm-{'compile' if compile else 'eager'}.json"
    flags = {"data": data, "model": args.model, "epochs": args.epochs, "res": args.res, "workers": args.timm_workers,
             "lr": args.lr, "crop-scale": args.crop_scale, "seed": args.seed, "out": out,
             "amp-dtype": "bfloat16" if args.timm_amp == "bf16" else "float32"}  # fmt: skip
    cmd = [str(args.timm_python), str(HERE / "timm_pipeline.py"), *_flags(flags)]
    if compile:
        cmd.append("--compile")
    env = KEEP_FREED_MEMORY if args.timm_keep_freed_memory else {}
    wall, log = _timed(cmd, env)
    result = json.loads(out.read_text())
    command = " ".join([*(f"{k}={v}" for k, v in env.items()), *cmd])
    epochs = [e | {"with_eval_s": round(e["seconds"] + e["eval_s"], 3)} for e in result["epochs"]]
    return dict(side="timm", compile=compile, precision=args.timm_amp.replace("none", "fp32"), probe_img_s={},
                epochs=_wall_at_ends(epochs, wall), top1=result["top1"], ema_top1=result["ema_top1"], wall_s=wall,
                command=command, log=log)  # fmt: skip


def _wall_at_ends(epochs: list[dict], wall: float) -> list[dict]:
    """Each epoch with ``wall_s``: the process's seconds at its end, its validation in — the run's wall time minus
    the epochs after it (what follows the last epoch, the final save, counts in every epoch's figure)."""
    after = [sum(e["with_eval_s"] for e in epochs[i + 1 :]) for i in range(len(epochs))]
    return [e | {"wall_s": round(wall - rest, 1)} for e, rest in zip(epochs, after, strict=True)]


def wall_to(run: dict, target: float) -> float | None:
    """Seconds from the run's start to the end of its first epoch whose top-1 reaches ``target``."""
    return next((e["wall_s"] for e in run["epochs"] if e["top1"] >= target), None)


def _flags(values: dict) -> list[str]:
    return [part for key, value in values.items() for part in (f"--{key}", str(value))]


def _timed(cmd: list[str], extra_env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src"), **(extra_env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{proc.stderr[-3000:]}")
    return round(time.monotonic() - start, 1), proc.stdout[-4000:] + proc.stderr[-2000:]


STEP = """
import contextlib, sys, time, torch
name, res, python_side, precision = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
cast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
if python_side == "timm":
    import timm
    model = timm.create_model(name, num_classes=10)
else:
    import convscale
    model = convscale.create_model(name, num_classes=10)
model = model.to(memory_format=torch.channels_last).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randn(64, 3, res, res).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (64,))
times = []
for i in range(25):
    t = time.perf_counter()
    with cast:
        loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t)
times = sorted(times[5:])
print(64 / times[len(times) // 2])
"""


def bare_steps(args, precisions: tuple[str, ...]) -> dict[tuple[str, str], list[float]]:
    """Images/s of the bare training step in each environment and precision, alternating (three each)."""
    got: dict[tuple[str, str], list[float]] = {}
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    for _ in range(3):
        for side, python in (("convscale", sys.executable), ("timm", str(args.timm_python))):
            for precision in precisions:
                out = subprocess.run([python, "-c", STEP, args.model, str(args.res), side, precision],
                                     capture_output=True, text=True, env=env, check=True)  # fmt: skip
                got.setdefault((side, precision), []).append(round(float(out.stdout.split()[-1]), 1))
    return got


def timm_fastest(bare: dict[tuple[str, str], list[float]]) -> str:
    """timm's precision by convscale's own rule: bf16 where its bare step is :data:`MARGIN` faster than fp32's."""
    from convscale.train.precision import MARGIN

    fp32, bf16 = (float(np.median(bare["timm", p])) for p in ("fp32", "bf16"))
    return "bf16" if bf16 > MARGIN * fp32 else "none"


def summary(run: dict) -> dict:
    def rate(epochs: list[dict]) -> float | None:
        seconds = sum(e["seconds"] for e in epochs)
        return round(sum(e["images"] for e in epochs) / seconds, 1) if seconds else None

    return dict(side=run["side"], compile=run["compile"], precision=run["precision"], img_s=rate(run["epochs"]),
                img_s_after_first=rate(run["epochs"][1:]),
                loader_wait_s=round(sum(e["loader_wait_s"] for e in run["epochs"]), 1),
                train_s=round(sum(e["seconds"] for e in run["epochs"]), 1), wall_s=run["wall_s"], top1=run["top1"],
                ema_top1=run["ema_top1"], probe_img_s=json.dumps(run["probe_img_s"]) if run["probe_img_s"] else "",
                command=run["command"])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/train")
    parser.add_argument("--work", default="runs/vs_timm", help="data, caches and runs (not committed)")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--modes", default="eager,compile")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0, help="both sides' seed")
    parser.add_argument("--crop-scale", type=float, default=0.35, help="smallest area of the random-resized crop")
    parser.add_argument("--photo-size", default="426x320", help="the photos' size (Imagenette-320's typical 426x320)")
    parser.add_argument("--timm-python", type=Path, default=REF_PY)
    parser.add_argument("--workers", type=int, default=0, help="convscale's loader processes [0]")
    parser.add_argument("--timm-workers", type=int, default=1, help="timm's loader processes [1: faster here than 2]")
    parser.add_argument("--sides", default="convscale,timm", help="which pipelines to run [both]")
    parser.add_argument(
        "--precision",
        choices=["fastest", "fp32"],
        default="fastest",
        help="fastest: convscale --amp auto, timm bf16 where its step is faster; fp32: both fp32",
    )
    parser.add_argument(
        "--timm-amp",
        choices=["measure", "bf16", "none"],
        default="measure",
        help="timm's precision under --precision fastest [measure: by its bare step]",
    )
    parser.add_argument(
        "--timm-keep-freed-memory", action="store_true", help="timm's process with glibc's allocator set as convscale's"
    )
    args = parser.parse_args()
    if not args.timm_python.exists():
        raise SystemExit(f"no reference Python at {args.timm_python}: run shared/tools/ref_env.sh first")
    work, out = Path(args.work), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.photo_size.split("x"))
    data = write_photos(work / f"digits-photos-{w}x{h}", size=(w, h))
    bare = bare_steps(args, ("fp32", "bf16") if args.precision == "fastest" else ("fp32",))
    print(f"bare training step, images/s: {bare}", flush=True)
    if args.precision == "fp32":
        args.timm_amp = "none"
    elif args.timm_amp == "measure":
        args.timm_amp = timm_fastest(bare)
    print(f"timm's precision: {args.timm_amp.replace('none', 'fp32')}", flush=True)
    runs = []
    sides = [{"convscale": convscale_run, "timm": timm_run}[s] for s in args.sides.split(",")]
    for n, mode in enumerate(args.modes.split(",")):
        compile = mode == "compile"
        pair = sides if n % 2 == 0 else sides[::-1]
        for fn in pair:
            runs.append(fn(args, data, work, compile))
            s = summary(runs[-1])
            print(f"{s['side']:9s} {mode:7s} {s['precision']:4s} {s['img_s']:7.1f} img/s (after epoch 1: "
                  f"{s['img_s_after_first']}), "
                  f"loader wait {s['loader_wait_s']:.1f} s, wall {s['wall_s']:.0f} s, top-1 {s['top1']:.2f} "
                  f"(EMA {s['ema_top1']:.2f})", flush=True)  # fmt: skip
    rows = [summary(r) for r in runs]
    host = machine()
    for row in rows:
        for precision in ("fp32", "bf16"):
            if (row["side"], precision) in bare:
                row[f"bare_step_{precision}_img_s"] = "/".join(str(v) for v in bare[row["side"], precision])
        row |= {"cpu": host.cpu, "isa": " ".join(host.isa), "seed": args.seed}
    for mode in args.modes.split(",") if len(args.sides.split(",")) == 2 else ():
        pair = [(r, row) for r, row in zip(runs, rows, strict=True) if r["compile"] == (mode == "compile")]
        target = min(r["top1"] for r, _ in pair)
        for r, row in pair:
            row |= {"target_top1": target, "wall_to_target_s": wall_to(r, target)}
    _write(out / "vs_timm.csv", rows)
    epochs = [dict(side=r["side"], compile=r["compile"], **e) for r in runs for e in r["epochs"]]
    _write(out / "vs_timm_epochs.csv", epochs)
    for mode in args.modes.split(",") if len(args.sides.split(",")) == 2 else ():
        ours = next(r for r in rows if r["side"] == "convscale" and r["compile"] == (mode == "compile"))
        theirs = next(r for r in rows if r["side"] == "timm" and r["compile"] == (mode == "compile"))
        print(
            f"{mode}: convscale ({ours['precision']}) / timm ({theirs['precision']}) images/s "
            f"{ours['img_s'] / theirs['img_s']:.2f}x over the run, wall {theirs['wall_s'] / ours['wall_s']:.2f}x, "
            f"wall to top-1 {ours['target_top1']:.2f}: {ours['wall_to_target_s']} vs {theirs['wall_to_target_s']} s "
            f"({theirs['wall_to_target_s'] / ours['wall_to_target_s']:.2f}x); final top-1 {ours['top1']:.2f} vs "
            f"{theirs['top1']:.2f}"
        )


def _write(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()

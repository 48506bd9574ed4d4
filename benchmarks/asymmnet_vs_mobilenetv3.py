"""AsymmNet against MobileNetV3, measured on this machine (results in results/asymmnet/, docs/results/asymmnet.md):

    .venv/bin/pip install scikit-learn      # a benchmark dependency only: its bundled digits, no download
    .venv/bin/python benchmarks/asymmnet_vs_mobilenetv3.py --out results/asymmnet

The lesson's claim is that AsymmNet matches or beats MobileNetV3 at the same multiply-adds, most of all under 200M.
For each size (large, small) and width (1.0, 0.75, 0.5, 0.35), the pair is AsymmNet and MobileNetV3 *as the AsymmNet
repository builds it* (the same tables, rounding and head: AsymmNet without the feature reuse, ``reuse=0``, written as
an architecture file), which is the paper's own baseline; the rows named ``mobilenetv3_*`` are that network (its
counts equal the repository's table, ``tests/test_asymmnet.py``), not timm's MobileNetV3.

1. Counts: parameters and MAdds at 224 px (convscale's counter, on the meta device).
2. Speed: each pair fused, in eager PyTorch and in the best deploy path (``deploy.optimize`` over ``--runtimes``,
   default eager and ONNX Runtime, at its batch), timed interleaved in one loop at batch 1 and 16, 224 px;
   ``--repeats`` passes give the spread.
3. Accuracy (``--accuracy-widths``): a short proxy training on scikit-learn's digits (``finetune_digits.py``'s
   ImageFolder: ``--train-per-class`` images per class to train, the rest to validate, 32 px) from scratch, the
   same recipe for every model, for each of ``--seeds``; the final top-1's mean and range.

Writes ``counts_speed.csv``, ``accuracy.csv``, ``asymmnet.png`` (top-1 against MAdds and against latency) and
``summary.md`` (the table of docs/results/asymmnet.md). Every output names the CPU and its instruction sets.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import write_csv
from convscale import create_model
from convscale.deploy import fuse, optimize
from convscale.deploy.runtimes import build_runner, time_runners
from convscale.factory import count_model
from convscale.train import fit, load_config
from finetune_digits import write_digits

WIDTHS = ("100", "075", "050", "035")
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_label() -> str:
    """The CPU's name, its instruction sets that matter here, and the threads PyTorch uses."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next(iter(re.findall(r"model name\s*:\s*(.+)", text)), "unknown CPU")
    flags = set(next(iter(re.findall(r"flags\s*:\s*(.+)", text)), "").split())
    have = ", ".join(f for f in FLAGS if f in flags) or "none of " + ", ".join(FLAGS)
    return f"{name.strip()} ({have}); {torch.get_num_threads()} threads"


def contenders(work: Path, size: str, width: str) -> dict[str, str]:
    """AsymmNet, and MobileNetV3 as the AsymmNet repository builds it, written as an architecture file (AsymmNet's
    config with ``reuse=0``) so that every tool takes it by name: tag -> model name or file."""
    import dataclasses

    from convscale.arch import write_arch
    from convscale.registry import get_entry

    name = f"asymmnet_{size}_{width}"
    cfg = dataclasses.replace(get_entry(name).config, reuse=0)
    arch = write_arch(work / f"mobilenetv3_{size}_{width}_repo.yaml", cfg, name, "MobileNetV3, AsymmNet repository")
    return {"asymmnet": name, "mobilenetv3": str(arch)}


def counts(model: str) -> tuple[int, float]:
    """Parameters and MAdds (millions) at 224 px."""
    params, macs = count_model(model, (224,))
    return params, macs[224] / 1e6


def runners(models: dict[str, str], batch: int, runtimes: tuple[str, ...], min_time: float):
    """For both models of a pair: the fused model in eager PyTorch and its best deploy path (``deploy.optimize``)."""
    x = torch.randn(batch, 3, 224, 224)
    out, best = {}, {}
    for tag, name in models.items():
        model = create_model(name).eval()
        out[f"{tag} eager"] = build_runner("eager", fuse(model), x, torch.device("cpu"))
        chosen = optimize(model, x, runtimes=runtimes, min_time=min_time / 2)
        best[tag] = chosen.choice
        out[f"{tag} best"] = chosen.runner
    return x, out, best


def speed(x: torch.Tensor, runners: dict, min_time: float) -> dict[str, dict[str, float]]:
    """Every runner of a pair timed interleaved in one loop: ms per batch, median and p10/p90."""
    timings = time_runners(runners, x, torch.device("cpu"), min_time=min_time)
    return {k: {"ms": t.median * 1e3, "p10": t.p10 * 1e3, "p90": t.p90 * 1e3} for k, t in timings.items()}


def accuracy(data: Path, work: Path, model: str, tag: str, seed: int, epochs: int) -> float:
    """The final top-1 of a short training from scratch on the digits, the same recipe for every model: AdamW 4e-3,
    one warm-up epoch, crops of at least 35% of the image (smaller ones lose the digit at 32 px), no EMA (a few
    hundred steps are too few for it)."""
    cfg = load_config(
        model=model, data=str(data), epochs=epochs, batch_size=32, train_res=32, test_res=32, lr=4e-3,
        warmup_epochs=1, crop_scale=0.35, ema=False, seed=seed, workers=0, out=str(work),
        name=f"{Path(model).stem}-{tag}-{seed}",
    )  # fmt: skip
    return float(fit(cfg, log=lambda *_: None).metrics["val_top1"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("results/asymmnet"))
    p.add_argument("--work", type=Path, default=Path("/tmp/asymmnet_bench"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--accuracy-widths", nargs="+", default=list(WIDTHS), choices=WIDTHS, help="widths trained")
    p.add_argument("--speed-csv", type=Path, help="reuse the counts and speed of an earlier run's counts_speed.csv")
    p.add_argument("--train-per-class", type=int, default=100)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--runtimes", nargs="+", default=["eager", "onnxruntime"], help="deploy paths to try")
    args = p.parse_args()
    cpu = cpu_label()
    print(cpu, flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = read_csv(args.speed_csv) if args.speed_csv else measure_speed(args, cpu)
    acc = []
    if not args.skip_accuracy:
        data = write_digits(args.work / "digits", args.train_per_class, seed=0)
        for size in ("large", "small"):
            for width in args.accuracy_widths:
                models = contenders(args.work, size, width)
                for seed in args.seeds:  # the pair's seeds interleaved: machine noise falls on both alike
                    for tag, model in models.items():
                        start = time.monotonic()
                        top1 = accuracy(data, args.work / "runs", model, tag, seed, args.epochs)
                        acc.append({"cpu": cpu, "model": f"{tag}_{size}_{width}", "size": size,
                                    "width": int(width) / 100, "seed": seed, "top1": top1,
                                    "wall_s": round(time.monotonic() - start, 1)})  # fmt: skip
                        print(acc[-1], flush=True)
        write_csv(args.out / "accuracy.csv", acc)
    summary = summarize(rows, acc, cpu, args)
    (args.out / "summary.md").write_text(summary)
    print(summary)
    plot(rows, acc, args.out / "asymmnet.png")


def read_csv(path: Path) -> list[dict]:
    import csv

    numeric = ("params", "madds_m", "batch", "repeat", "width", "seed", "top1", "wall_s")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if k in numeric or k.endswith("_ms"):
                r[k] = float(v)
    return rows


def measure_speed(args, cpu: str) -> list[dict]:
    rows = []
    for size in ("large", "small"):
        for width in WIDTHS:
            models = contenders(args.work, size, width)
            for batch in (1, 16):
                x, built, best = runners(models, batch, tuple(args.runtimes), args.min_time)
                for repeat in range(args.repeats):
                    times = speed(x, built, args.min_time)
                    for tag, model in models.items():
                        params, madds = counts(model)
                        row = {"cpu": cpu, "model": f"{tag}_{size}_{width}", "size": size, "width": int(width) / 100,
                               "params": params, "madds_m": round(madds, 2), "batch": batch, "repeat": repeat,
                               "eager_ms": round(times[f"{tag} eager"]["ms"], 3),
                               "eager_p10_ms": round(times[f"{tag} eager"]["p10"], 3),
                               "eager_p90_ms": round(times[f"{tag} eager"]["p90"], 3),
                               "best": best[tag], "best_ms": round(times[f"{tag} best"]["ms"], 3),
                               "best_p10_ms": round(times[f"{tag} best"]["p10"], 3),
                               "best_p90_ms": round(times[f"{tag} best"]["p90"], 3)}  # fmt: skip
                        rows.append(row)
                        print({k: v for k, v in row.items() if k != "cpu"}, flush=True)
    write_csv(args.out / "counts_speed.csv", rows)
    return rows


def _mean_range(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f} ({min(values):.1f}–{max(values):.1f})" if values else "-"


def summarize(rows: list[dict], acc: list[dict], cpu: str, args) -> str:
    lines = [
        f"CPU: {cpu}. Latency: median ms per batch at 224 px over {args.repeats} interleaved passes (range of the "
        f"passes' medians); best = the fastest correct deploy path. Top-1: final top-1 on the digits proxy (32 px, "
        f"{args.epochs} epochs, {args.train_per_class} training images per class), mean (min–max) over seeds "
        f"{', '.join(map(str, args.seeds))}.",
        "",
        "| model | params | MAdds (M) | b1 eager ms | b1 best ms | b16 eager ms | b16 best ms | top-1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    models = list(dict.fromkeys(r["model"] for r in rows))
    for m in models:
        mine = [r for r in rows if r["model"] == m]
        cells = []
        for batch in (1, 16):
            for key in ("eager_ms", "best_ms"):
                v = [r[key] for r in mine if r["batch"] == batch]
                cells.append(f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})")
        top = _mean_range([a["top1"] for a in acc if a["model"] == m])
        lines.append(
            f"| {m} | {mine[0]['params'] / 1e6:.3f}M | {mine[0]['madds_m']:.2f} | " + " | ".join(cells) + f" | {top} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], acc: list[dict], path: Path) -> None:
    if not acc:
        return
    from convscale.utils.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for tag, marker in (("asymmnet", "o"), ("mobilenetv3", "s")):
        for size, color in (("large", "tab:blue"), ("small", "tab:orange")):
            trained = {a["model"] for a in acc}
            ms = [m for m in dict.fromkeys(r["model"] for r in rows) if m.startswith(f"{tag}_{size}") and m in trained]
            madds = [next(r["madds_m"] for r in rows if r["model"] == m) for m in ms]
            lat = [statistics.median(r["best_ms"] for r in rows if r["model"] == m and r["batch"] == 1) for m in ms]
            tops = [statistics.mean(a["top1"] for a in acc if a["model"] == m) for m in ms]
            style = dict(
                marker=marker, color=color, linestyle="-" if tag == "asymmnet" else "--", label=f"{tag} {size}"
            )
            axes[0].plot(madds, tops, **style)
            axes[1].plot(lat, tops, **style)
    axes[0].set(xlabel="MAdds at 224 px (M)", ylabel="digits proxy top-1 (%)", xscale="log")
    axes[1].set(xlabel="batch-1 latency, best deploy path (ms)", ylabel="digits proxy top-1 (%)", xscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()

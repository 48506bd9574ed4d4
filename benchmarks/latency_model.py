"""How well the latency table predicts whole networks on this machine (``convscale.search.latency``), judged three
ways: within 10% of the measurement, Spearman rank correlation with it, and against the machine's own test-retest.

30 EfficientNet/V2-style networks are sampled (seeded): V1's or V2's base table, each stage's block, expansion,
kernel and layer count drawn from the stage-search space, width × 0.5–1.4, depth × 0.6–1.4, 96–192 px. Ten more,
drawn the same way with another seed, calibrate each setting (measured ≈ scale · Σ parts + per_part · parts, in
the table's yardsticks).

For each setting (eval and a training step, batch 1 and 16; and eval at batch 1 on one thread, its own table) every
network is predicted from the table, then measured whole in six rounds, every round a freshly built copy of each
network in turn (the order reversed every other round), each next to a fresh copy of its base (``efficientnet_b0``
or ``efficientnetv2_b0`` at 128 px) and to a timing of the table's yardstick: the **test** is the median of rounds
1–3 and the **retest** the median of rounds 4–6, minutes later. The retest judged against the test is what this
machine's own repeatability allows. FLOPs ranked against the test are the yardstick below which a latency model is
not worth its measuring.

The prediction is the table's yardsticks (``predict_units``) times the pace: **predicted** takes the median of the
yardstick timed beside the test's three measurements (the model's answer to "how long does this network take now",
asked at the moment it is measured); **predicted_once** the yardstick timed once before the rounds
(``LatencyTable.predict``), which a pace moving during the rounds puts off by as much as it moved.

Judged twice: in milliseconds, and as the **ratio to the base** measured beside it — the figure a search uses (a
budget is a multiple of the base's measured time, and candidates are measured against the base in the same
rounds). A neighbour's load on this shared machine moves every network's milliseconds by up to a third within
minutes (``base_swing``: the slowest of the base's measurements over its fastest); the ratio cancels the part of it
that slows a network and its base alike.

    python benchmarks/latency_model.py --out results/search      # about 60 minutes on the 2-core CPU, run alone

Writes ``latency_model.csv`` (a row per network and setting) and ``latency_model_summary.csv`` (per setting), and
prints the summary; each names the CPU and its instruction sets.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_csv
from convscale.registry import get_entry
from convscale.scaling import scaled_config
from convscale.search.latency import LatencyTable, Setting, measure_network, table_path
from convscale.search.report import counts
from convscale.search.space import apply_choices, random_choices
from convscale.utils.machine import machine
from convscale.utils.stats import spearman

# (setting, threads): 0 threads is the machine's default
SETTINGS = [
    (Setting(batch=1), 0),
    (Setting(batch=16), 0),
    (Setting(batch=1, mode="train"), 0),
    (Setting(batch=16, mode="train"), 0),
    (Setting(batch=1), 1),
]
BASES = ("efficientnet_b0", "efficientnetv2_b0")
ROUNDS = 6  # test: rounds 1-3, retest: rounds 4-6
BASE_RES = 128  # the size each network's base is measured at, beside it


def sample(n: int, seed: int):
    rng = random.Random(seed)
    for i in range(n):
        base = get_entry(BASES[i % 2]).config
        cfg = apply_choices(base, random_choices(base, rng))
        width, depth = rng.uniform(0.5, 1.4), rng.uniform(0.6, 1.4)
        res = rng.choice(range(96, 193, 16))
        yield (
            f"net{i:02d}-{BASES[i % 2]}-w{width:.2f}-d{depth:.2f}-{res}px",
            scaled_config(cfg, width=width, depth=depth),
            res,
        )


def measure_rounds(networks, bases, table, setting, min_time):
    """Seconds per call of each network, of its base beside it and of the table's yardstick beside both (the pace
    at that moment), in ROUNDS interleaved rounds (a freshly built copy each time; the order, and the order within
    each network's three, reversed every other round)."""
    runs: list[list[float]] = [[] for _ in networks]
    base_runs: list[list[float]] = [[] for _ in networks]
    paces: list[list[float]] = [[] for _ in networks]
    for r in range(ROUNDS):
        order = list(range(len(networks)))
        for i in order if r % 2 == 0 else order[::-1]:
            _, cfg, res = networks[i]
            three = [
                (runs[i], lambda c=cfg, x=res: measure_network(c, x, setting, min_time=min_time)),
                (base_runs[i], lambda b=bases[i % 2]: measure_network(b, BASE_RES, setting, min_time=min_time)),
                (paces[i], lambda: table.pace(setting, min_time)),
            ]
            for into, timed in three if r % 2 == 0 else three[::-1]:
                into.append(timed())
    return runs, base_runs, paces


def setting_label(setting, threads: int) -> str:
    return f"{setting.mode} b{setting.batch} {threads}t"


def worst(predicted: list[float], measured: list[float]) -> float:
    return round(max(abs(p / m - 1) for p, m in zip(predicted, measured, strict=True)), 4)


def within(predicted: list[float], measured: list[float], bound: float = 0.10) -> int:
    return sum(abs(p / m - 1) <= bound for p, m in zip(predicted, measured, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/search")
    parser.add_argument("--networks", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds of timed calls per measurement [0.3]")
    parser.add_argument("--tables", default="/tmp/convscale-latency-tables", help="folder of the latency tables")
    parser.add_argument("--settings", help="comma-separated indices into SETTINGS to run (default: all)")
    parser.add_argument("--suffix", default="", help="appended to the output files' names")
    args = parser.parse_args()
    out = Path(args.out)
    m = machine()
    print(f"{m.cpu}, {m.threads} threads, {', '.join(m.isa)}; torch {torch.__version__}", flush=True)
    calibration = [(cfg, res) for _, cfg, res in sample(10, args.seed + 1000)]
    bases = [get_entry(b).config for b in BASES]  # network i's base is bases[i % 2], as sample() draws it
    networks = list(sample(args.networks, args.seed))
    gmacs = [counts(cfg, res)[0] / 1e9 for _, cfg, res in networks]
    default_threads = torch.get_num_threads()
    rows, summary = [], []
    chosen = [SETTINGS[int(i)] for i in args.settings.split(",")] if args.settings else SETTINGS
    for setting, threads in chosen:
        torch.set_num_threads(threads or default_threads)
        table = LatencyTable(table_path(args.tables))  # keyed by the thread count
        start = time.time()
        scale, per_part = table.calibrate(calibration, setting)
        parts_units = [table.parts_units(cfg, res, setting) for _, cfg, res in networks]
        units = [table.predict_units(cfg, res, setting) for _, cfg, res in networks]
        predicted_once = [u * table.yardstick(setting) for u in units]  # the pace timed once (as predict does)
        base_units = [table.predict_units(bases[i % 2], BASE_RES, setting) for i in range(len(networks))]
        runs, base_runs, paces = measure_rounds(networks, bases, table, setting, args.min_time)
        pace_test = [statistics.median(x[:3]) for x in paces]  # the pace beside the test's three measurements
        predicted = [u * p for u, p in zip(units, pace_test, strict=True)]
        parts = [u * p for u, p in zip(parts_units, pace_test, strict=True)]
        test = [statistics.median(x[:3]) for x in runs]
        retest = [statistics.median(x[3:]) for x in runs]
        test_min, retest_min = [min(x[:3]) for x in runs], [min(x[3:]) for x in runs]  # the other estimator
        ratios = [[t / b for t, b in zip(x, y, strict=True)] for x, y in zip(runs, base_runs, strict=True)]
        ratio_test = [statistics.median(x[:3]) for x in ratios]
        ratio_retest = [statistics.median(x[3:]) for x in ratios]
        ratio_predicted = [u / b for u, b in zip(units, base_units, strict=True)]
        every_base, every_pace = [t for x in base_runs for t in x], [t for x in paces for t in x]
        label = setting_label(setting, threads or default_threads)
        for (name, _, res), g, s, p, po, t, rt, run, rp, rtest, rretest in zip(
            networks,
            gmacs,
            parts,
            predicted,
            predicted_once,
            test,
            retest,
            runs,
            ratio_predicted,
            ratio_test,
            ratio_retest,
            strict=True,
        ):
            rows.append(dict(
                network=name, setting=label, mode=setting.mode, batch=setting.batch,
                threads=threads or default_threads, res=res, gmacs=round(g, 4), parts_ms=round(s * 1e3, 3),
                predicted_ms=round(p * 1e3, 3), predicted_once_ms=round(po * 1e3, 3), test_ms=round(t * 1e3, 3),
                retest_ms=round(rt * 1e3, 3), error=round(p / t - 1, 4), error_once=round(po / t - 1, 4),
                error_uncalibrated=round(s / t - 1, 4), retest_error=round(rt / t - 1, 4),
                rounds_ms=" ".join(f"{x * 1e3:.2f}" for x in run), ratio_predicted=round(rp, 4),
                ratio_test=round(rtest, 4), ratio_retest=round(rretest, 4), ratio_error=round(rp / rtest - 1, 4),
                ratio_retest_error=round(rretest / rtest - 1, 4),
            ))  # fmt: skip
        n = len(networks)
        row = dict(
            setting=label, networks=n, scale=round(scale, 4), per_part_yardsticks=round(per_part, 4),
            yardstick_ms=round(table.yardstick(setting) * 1e3, 4),
            pace_ms=round(statistics.median(every_pace) * 1e3, 4),
            within10_predicted=within(predicted, test), within10_predicted_once=within(predicted_once, test),
            within10_uncalibrated=within(parts, test),
            within10_retest=within(retest, test),
            within10_predicted_min=within(predicted, test_min), within10_retest_min=within(retest_min, test_min),
            spearman_predicted=round(spearman(predicted, test), 4),
            spearman_predicted_once=round(spearman(predicted_once, test), 4),
            spearman_uncalibrated=round(spearman(parts, test), 4),
            spearman_retest=round(spearman(retest, test), 4), spearman_gmacs=round(spearman(gmacs, test), 4),
            worst_predicted=worst(predicted, test), worst_predicted_once=worst(predicted_once, test),
            worst_retest=worst(retest, test),
            within10_ratio_predicted=within(ratio_predicted, ratio_test),
            within10_ratio_retest=within(ratio_retest, ratio_test),
            spearman_ratio_predicted=round(spearman(ratio_predicted, ratio_test), 4),
            spearman_ratio_retest=round(spearman(ratio_retest, ratio_test), 4),
            worst_ratio_predicted=worst(ratio_predicted, ratio_test),
            worst_ratio_retest=worst(ratio_retest, ratio_test),
            base_swing=round(max(every_base) / min(every_base), 3),
            pace_swing=round(max(every_pace) / min(every_pace), 3),
            minutes=round((time.time() - start) / 60, 1), cpu=m.cpu, isa=" ".join(m.isa),
        )  # fmt: skip
        summary.append(row)
        print({k: v for k, v in row.items() if k not in ("cpu", "isa")}, flush=True)
        write_csv(out / f"latency_model{args.suffix}.csv", rows)
        write_csv(out / f"latency_model_summary{args.suffix}.csv", summary)
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()

"""How well the latency table predicts whole networks on this machine (``convscale.search.latency``).

30 EfficientNet/V2-style networks are sampled (seeded): V1's or V2's base table, each stage's block, expansion, kernel
and layer count drawn from the stage-search space, width × 0.5–1.4, depth × 0.6–1.4, 96–192 px. Ten more, drawn
the same way with another seed, calibrate each setting (measured ≈ scale · Σ parts + per_part · parts). For each
setting (eval at batch 1 and 16, a training step at batch 16) every network is predicted from the table and measured
whole (the median of three freshly built copies), and the error is reported with and without the calibration.

    python benchmarks/latency_model.py --out docs/search      # about 10 minutes on the 2-core CPU

Writes ``latency_model.csv`` (a row per network and setting) and prints the share within 10%.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from convscale.registry import get_entry
from convscale.scaling import scaled_config
from convscale.search.latency import LatencyTable, Setting, measure_network
from convscale.search.space import apply_choices, random_choices

SETTINGS = [Setting(batch=1), Setting(batch=16), Setting(batch=16, mode="train")]
BASES = ("efficientnet_b0", "efficientnetv2_b0")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/search")
    parser.add_argument("--networks", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", help="latency table file (default: a fresh one in --out)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = LatencyTable(args.table or out / "latency_table.json")
    calibration = [(cfg, res) for _, cfg, res in sample(10, args.seed + 1000)]
    networks = list(sample(args.networks, args.seed))
    rows = []
    for setting in SETTINGS:
        start = time.time()
        scale, per_part = table.calibrate(calibration, setting)
        label = f"{setting.mode} batch {setting.batch}"
        print(f"{label}: calibration scale {scale:.3f}, {per_part * 1e3:.3f} ms per part", flush=True)
        for name, cfg, res in networks:
            parts = table.parts_sum(cfg, res, setting)
            predicted = table.predict(cfg, res, setting)
            measured = measure_network(cfg, res, setting, repeats=3)
            rows.append(dict(
                network=name, mode=setting.mode, batch=setting.batch, res=res, parts_ms=round(parts * 1e3, 3),
                predicted_ms=round(predicted * 1e3, 3), measured_ms=round(measured * 1e3, 3),
                error=round(predicted / measured - 1, 4), error_uncalibrated=round(parts / measured - 1, 4),
            ))  # fmt: skip
        got = [r for r in rows if r["mode"] == setting.mode and r["batch"] == setting.batch]
        within = sum(abs(r["error"]) <= 0.10 for r in got)
        raw = sum(abs(r["error_uncalibrated"]) <= 0.10 for r in got)
        worst = max(abs(r["error"]) for r in got)
        print(f"{label}: {within}/{len(got)} within 10% (uncalibrated {raw}/{len(got)}), worst {100 * worst:.1f}%, "
              f"{time.time() - start:.0f} s", flush=True)  # fmt: skip
    with open(out / "latency_model.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()

"""Whether the latency table's calibration should carry a cost per part (``convscale.search.latency.fit_calibration``):
the ten calibration networks of ``latency_model.py`` are measured again, the calibration fitted three ways — a
scale and a cost per part always, a scale alone, and the library's rule (the per-part cost only where it lowers the
leave-one-out error) — and each judged on the 30 networks of a finished ``latency_model.py`` run: its test medians,
at the pace timed beside them (its ``parts_ms`` over the table's sum of parts, in yardsticks).

    python benchmarks/latency_calibration.py --tables /tmp/convscale-latency-tables   # ~4 min, after latency_model.py

Writes ``latency_calibration.csv`` (a row per setting and fit, naming the CPU and its instruction sets) and prints it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_csv
from convscale.search.latency import LatencyTable, fit_calibration, table_path
from convscale.utils.machine import machine
from latency_model import SETTINGS, sample, setting_label, within

FITS = {"scale and per-part cost": True, "rule (leave-one-out)": None, "scale alone": False}


def judged(table, setting, fit, networks, measured_rows) -> int:
    """How many of the run's networks the calibration ``fit`` puts within 10% of their test median."""
    predicted, test = [], []
    for name, cfg, res in networks:
        row = measured_rows[name]
        pace = float(row["parts_ms"]) / table.parts_units(cfg, res, setting)  # the yardstick's ms beside the test
        predicted.append(table.predict_units(cfg, res, setting, calibration=fit) * pace)
        test.append(float(row["test_ms"]))
    return within(predicted, test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="results/search/latency_model.csv", help="a latency_model.py run's rows")
    parser.add_argument("--out", default="results/search")
    parser.add_argument("--tables", default="/tmp/convscale-latency-tables", help="the run's latency tables")
    parser.add_argument("--seed", type=int, default=0, help="the run's --seed")
    args = parser.parse_args()
    m = machine()
    print(f"{m.cpu}, {m.threads} threads, {', '.join(m.isa)}; torch {torch.__version__}", flush=True)
    rows_of_run = list(csv.DictReader(open(args.run)))
    networks = list(sample(len({r["network"] for r in rows_of_run}), args.seed))
    calibration = [(cfg, res) for _, cfg, res in sample(10, args.seed + 1000)]
    default_threads, out = torch.get_num_threads(), []
    for setting, threads in SETTINGS:
        label = setting_label(setting, threads or default_threads)
        measured_rows = {r["network"]: r for r in rows_of_run if r["setting"] == label}
        if not measured_rows:
            continue
        torch.set_num_threads(threads or default_threads)
        table = LatencyTable(table_path(args.tables))
        inputs = table.calibration_inputs(calibration, setting)
        for name, per_part in FITS.items():
            fit = fit_calibration(*inputs, per_part=per_part)
            out.append(dict(
                setting=label, fit=name, scale=round(fit[0], 4), per_part_yardsticks=round(fit[1], 4),
                within10=judged(table, setting, fit, networks, measured_rows), networks=len(networks),
                within10_retest=sum(abs(float(r["retest_error"])) <= 0.10 for r in measured_rows.values()),
                cpu=m.cpu, isa=" ".join(m.isa),
            ))  # fmt: skip
            print({k: v for k, v in out[-1].items() if k not in ("cpu", "isa")}, flush=True)
        write_csv(Path(args.out) / "latency_calibration.csv", out)
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()

"""The papers' searches re-run on this machine, with measured latency deciding and seeds deciding accuracy
(``convscale.search``).

1. From efficientnet_b0 at 64 px: the (α, β, γ) grid (step 0.1) pruned by this CPU's predicted latency (one forward
   of a batch of 16, 2× the base's ± 10%), every shortlisted point measured whole against the base and dropped if
   over 2× its measured time; beside it the paper's grid constrained by FLOPs (α·β²·γ² = 2 ± 10%) and the paper's
   own (α, β, γ) = (1.2, 1.1, 1.15) at φ = 1. ``--candidates`` points of each grid, the base and the paper's point
   are proxy-trained ``--seeds`` times; the most accurate inside the budget wins (``--objective accuracy``).
2. Every trained scaling network measured again in one interleaved session against the base, and the searched
   winner compared with the FLOPs-scaled networks at equal measured latency (± 5%): mean top-1 difference against
   the spread (the larger standard deviation over seeds).
3. From efficientnetv2_b0 at 64 px: the stage search under the base's measured training step at batch 16,
   ``--objective accuracy``; the best ``--proxies`` inside the measured budget and the base, ``--stage-seeds`` each
   (the committed run: 2, for time).

Proxy runs: scikit-learn's handwritten digits as an ImageFolder at 64 px (100 per class for training, the other 797
for validation; ``benchmarks/finetune_digits.write_digits``), ``--epochs`` epochs, batch 32, AdamW 4e-3, crop scale
0.5, no dropout or drop path.

    python benchmarks/search_demo.py --out results/search      # about an hour on the 2-core CPU, alone; reruns resume

Writes ``OUT/scaling-latency``, ``OUT/scaling-gmacs``, ``OUT/paper-phi1``, ``OUT/stages`` (each search's
candidates.csv, arch.yaml, search.json), ``OUT/search_demo.csv`` (every scaling network at the joint measurement),
``OUT/search_compare.csv`` (the comparison at equal latency) and ``OUT/pareto.png``; each names the CPU.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_csv
from convscale.arch import read_arch, write_arch
from convscale.registry import get_entry
from convscale.search.compound import ScalingSearch, search_scaling
from convscale.search.latency import LatencyTable, Setting
from convscale.search.measure import Measured, measure_against_base
from convscale.search.proxy import Candidate, ProxyRun, measure_candidates, run_candidates
from convscale.search.report import figures, plot_pareto
from convscale.search.space import ScalePoint, scale
from convscale.search.stages import StageSearch, search_stages
from convscale.utils.machine import machine
from finetune_digits import write_digits

RES = 64
SETTING = Setting(batch=16)
EQUAL = 0.05  # "equal measured latency": within 5%


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/search")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--proxies", type=int, default=2)
    parser.add_argument("--stage-seeds", type=int, help="seeds per stage-search candidate (default: --seeds)")
    parser.add_argument("--table", default="/tmp/convscale-search-table.json")
    parser.add_argument("--skip-stages", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    m = machine()
    cpu = f"{m.cpu}, {m.threads} threads, {' '.join(m.isa)}"
    print(cpu, flush=True)
    table = LatencyTable(args.table)
    digits = write_digits(out / "runs" / "digits", 100, seed=0, size=RES)  # runs/ is not committed
    proxy = ProxyRun(
        data=str(digits), epochs=args.epochs, batch_size=32, lr=4e-3, crop_scale=0.5, drop_rate=0.0, drop_path_rate=0.0
    )
    series, minutes = {}, {}
    for constraint in ("latency", "gmacs"):
        start = time.time()
        s = ScalingSearch(
            "efficientnet_b0", RES, constraint, target=2.0, step=0.1, tolerance=0.1, phis=1,
            max_candidates=args.candidates, batch=SETTING.batch, objective="accuracy", seeds=args.seeds,
        )  # fmt: skip
        search_scaling(s, out / f"scaling-{constraint}", proxy, table=table)
        series[constraint] = [r for r in _rows(out / f"scaling-{constraint}") if r["top1"]]
        minutes[constraint] = _min(start)
    start = time.time()
    series["paper"] = paper_point(out / "paper-phi1", proxy, table, args.seeds)
    minutes["paper"] = _min(start)
    rows, compare = equal_latency(series, out)
    for r in rows:
        r["cpu"] = cpu
    write_csv(out / "search_demo.csv", rows)
    write_csv(out / "search_compare.csv", [c | {"cpu": cpu} for c in compare])
    names = {"latency": "latency-constrained grid (winner ★)", "gmacs": "FLOPs-constrained grid",
             "paper": "paper's (1.2, 1.1, 1.15), φ 1", "base": "efficientnet_b0"}  # fmt: skip
    plot_series = {names[k]: [r for r in rows if r["search"] == k] for k in names}
    title = f"efficientnet_b0 at {RES} px: digits top-1 (mean ± sd, {args.seeds} seeds) vs measured latency (b16)"
    base_ms = next(r["measured_ms"] for r in rows if r["search"] == "base")
    gone = [r for r in _rows(out / "scaling-latency") if r.get("dropped")]  # their ratio, on the joint base's time
    dropped = [float(r["measured_ratio"]) * base_ms for r in gone]
    plot_pareto(plot_series, out / "pareto.png", title=title, budget_ms=2.0 * base_ms, dropped=dropped)
    for c in compare:
        print(c, flush=True)
    print({k: f"{v} min" for k, v in minutes.items()}, flush=True)
    if not args.skip_stages:
        start = time.time()
        st = StageSearch("efficientnetv2_b0", RES, mode="train", batch=16, proxies=args.proxies,
                         objective="accuracy", seeds=args.stage_seeds or args.seeds)  # fmt: skip
        summary = search_stages(st, out / "stages", proxy, table=table)
        print({"stages": summary["decision"], "minutes": _min(start)}, flush=True)


def paper_point(out: Path, proxy: ProxyRun, table: LatencyTable, seeds: int) -> list[dict]:
    """The paper's coefficients at phi = 1 (EfficientNet-B1's rule without the hand rounding), trained the same way."""
    cfg = get_entry("efficientnet_b0").config
    scaled, res = scale(cfg, RES, ScalePoint(1.2, 1.1, 1.15))
    arch = write_arch(
        out / "archs" / "paper-phi1.yaml", scaled, "efficientnet_b0", comment="paper's alpha, beta, gamma"
    )
    base_arch = write_arch(out / "archs" / "base.yaml", cfg, "efficientnet_b0", comment="the base")
    figs = figures(scaled, res, table, SETTING) | {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}
    paper = Candidate("paper-phi1", str(arch), res, figs)
    base = Candidate("base", str(base_arch), RES, figures(cfg, RES, table, SETTING))
    measure_candidates([base, paper], base, out, SETTING)
    return run_candidates([paper], proxy, out, seeds=seeds)


def equal_latency(series: dict[str, list[dict]], out: Path) -> tuple[list[dict], list[dict]]:
    """Every trained network measured again, all in one interleaved session against the base; then the latency
    search's winner against each FLOPs-scaled network (grid or paper) within ±5% of its measured time."""
    nets, rows = {}, []
    for search, found in series.items():
        for r in found:
            if r["label"] == "base":
                if search == "latency":
                    rows.append(r | {"search": "base"})
                continue
            key = f"{search}:{r['label']}"
            nets[key] = (read_arch(r["arch"])[1], int(r["res"]))
            rows.append(r | {"search": search, "key": key})
    base, measured = _joint(nets, out / "search_demo.csv")
    keep = ("search", "label", "alpha", "beta", "gamma", "res", "gmacs", "params_m", "predicted_ms")
    table = []
    for r in rows:
        m = base if r["search"] == "base" else measured[r["key"]]
        table.append({k: r.get(k, "") for k in keep} | {
            "measured_ms": round(m.ms, 3), "measured_ratio": round(m.ratio, 4), "spread": round(m.spread, 4),
            "noisy": m.noisy, "search_measured_ratio": r["measured_ratio"], "top1": float(r["top1"]),
            "top1_std": float(r["top1_std"]), "top1_seeds": r["top1_seeds"],
        })  # fmt: skip
    decision = _decision(out / "scaling-latency")
    winner = next(t for t in table if t["search"] == "latency" and t["label"] == decision["winner"])
    compare = []
    for t in table:
        if t["search"] in ("gmacs", "paper"):
            gap = t["measured_ratio"] / winner["measured_ratio"] - 1
            diff = winner["top1"] - t["top1"]
            spread = max(winner["top1_std"], t["top1_std"])
            compare.append({
                "searched": winner["label"], "searched_ms": winner["measured_ms"], "searched_top1": winner["top1"],
                "searched_std": winner["top1_std"], "flops_scaled": f"{t['search']}:{t['label']}",
                "flops_ms": t["measured_ms"], "flops_top1": t["top1"], "flops_std": t["top1_std"],
                "latency_gap": round(gap, 4), "equal_latency": abs(gap) <= EQUAL, "top1_difference": round(diff, 3),
                "spread": round(spread, 3),
                "verdict": ("searched better" if diff > spread else "FLOPs-scaled better" if -diff > spread else "tie"),
            })  # fmt: skip
    return table, compare


def _joint(nets: dict, earlier: Path) -> tuple[Measured, dict[str, Measured]]:
    """The networks measured in one session against the base — read back from an earlier ``search_demo.csv`` when it
    holds exactly these networks (a rerun redraws without measuring again)."""
    if earlier.is_file():
        rows = {f"{r['search']}:{r['label']}": r for r in _rows_of(earlier)}
        if set(rows) - {"base:base"} == set(nets):

            def back(r: dict) -> Measured:
                ms, ratio, spread = float(r["measured_ms"]), float(r["measured_ratio"]), float(r["spread"])
                return Measured(ms, ratio, spread, 0, r["noisy"] == "True")

            return back(rows["base:base"]), {k: back(rows[k]) for k in nets}
    print(f"measuring {len(nets)} trained networks against the base, interleaved", flush=True)
    return measure_against_base((get_entry("efficientnet_b0").config, RES), nets, SETTING, max_rounds=9)


def _rows_of(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _rows(folder: Path) -> list[dict]:
    with open(folder / "candidates.csv") as f:
        return list(csv.DictReader(f))


def _decision(folder: Path) -> dict:
    import json

    return json.loads((folder / "search.json").read_text())["decision"]


def _min(start: float) -> float:
    return round((time.time() - start) / 60, 1)


if __name__ == "__main__":
    main()

"""The FLOPs rule's family against the searched front, on one measured-latency axis, with seeds (``convscale.search``
on Optuna).

1. **The proxy and its noise.** scikit-learn's digits as an ImageFolder at ``--res`` px (100 per class to train, the
   other 797 to validate; ``benchmarks/finetune_digits.write_digits``), ``--epochs`` epochs, batch 32, AdamW 4e-3,
   crop scale 0.5, no dropout or drop path, fp32. The base (``--base``: mobilenetv3_small_100, small enough that
   three seeds of four family members and a search fit in about half an hour on two cores) trained ``--seeds``
   times first: its spread is the noise any comparison must beat.
2. **The FLOPs rule's family**: the base scaled by the paper's (α, β, γ) = (1.2, 1.1, 1.15) for φ = 0…3, and the
   FLOPs grid's winner (``search scaling --constraint gmacs --target 2``: α·β²·γ² = 2 ± 10%, step 0.1,
   ``--grid-points`` points, the most accurate over ``--seeds`` seeds), each trained ``--seeds`` times.
3. **The searched front**: ``search stages`` from the same base, every stage free, one forward of a batch of 16
   within the φ = 3 member's measured time, ``--trials`` networks sampled by NSGA-II, pruned by successive halving,
   the survivors confirmed over ``--seeds`` seeds; its Pareto front of mean top-1 against measured latency.
4. **One axis**: every network of both sides measured again in one interleaved session against the base.
5. **The verdict**: each side's hypervolume (the area its networks dominate in latency ↓ × top-1 ↑, from the
   slowest network's latency and the lowest mean top-1), with a bootstrap over seeds (each network's seeds
   resampled with replacement, ``--bootstrap`` times); and at each family member's latency, the searched front's
   best mean top-1 within that latency against the member's, judged against the larger spread of the two.
   Compute: the study's trials started, pruned, completed, and CPU-minutes, against the same trials trained to the
   end (the previous engine trained every candidate it measured inside the budget for all epochs).

    python benchmarks/search_demo.py --out results/search        # alone on the machine; a rerun resumes each study

Writes ``OUT/proxy_seeds.csv``, ``OUT/family/`` and ``OUT/flops-grid/`` and ``OUT/front/`` (each search's study,
candidates.csv, pareto.csv, search.json), ``OUT/demo_networks.csv`` (every network on the joint axis),
``OUT/demo_verdict.csv``, ``OUT/demo_summary.json`` and ``OUT/front.png``; each names the CPU.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_csv
from convscale.arch import read_arch, write_arch
from convscale.registry import get_entry
from convscale.search.compound import ScalingSearch, search_scaling
from convscale.search.front import hypervolume
from convscale.search.latency import LatencyTable, Setting
from convscale.search.measure import measure_against_base
from convscale.search.proxy import ProxyRun, proxy_train
from convscale.search.report import counts, plot_pareto
from convscale.search.space import ScalePoint, family
from convscale.search.stages import StageSearch, search_stages
from convscale.utils.machine import machine
from convscale.utils.stats import mean_spread
from finetune_digits import write_digits

SETTING = Setting(batch=16)  # one forward of a batch of 16
PAPER = ScalePoint(1.2, 1.1, 1.15)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/search")
    p.add_argument(
        "--base",
        default="mobilenetv3_small_100",
        help="an MBConv-family model [mobilenetv3_small_100: "
        "small enough that 3 seeds of φ = 0…3 and a search fit in half an hour on 2 cores]",
    )
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--grid-points", type=int, default=2)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--table", default="/tmp/convscale-search-table.json")
    args = p.parse_args()
    out = Path(args.out)
    m = machine()
    cpu = f"{m.cpu}, {m.threads} threads, {' '.join(m.isa)}"
    print(cpu, flush=True)
    table = LatencyTable(args.table)
    digits = write_digits(out / "runs" / "digits", 100, seed=0, size=args.res)  # runs/ is not committed
    proxy = ProxyRun(data=str(digits), epochs=args.epochs, batch_size=32, lr=4e-3, crop_scale=0.5, drop_rate=0.0,
                     drop_path_rate=0.0)  # fmt: skip
    clock = {}
    start = time.time()
    fam = family_runs(out / "family", proxy, args)
    clock["family"] = _min(start)
    base = fam[0]
    print(f"proxy noise: the base's top-1 over {args.seeds} seeds {base['top1_seeds']} -> {base['top1']:.2f} ± "
          f"{base['top1_std']:.2f}", flush=True)  # fmt: skip
    noise = {k: base[k] for k in ("label", "top1_seeds", "top1", "top1_std")}
    write_csv(out / "proxy_seeds.csv", [noise | {"cpu": cpu}])
    start = time.time()
    grid = search_scaling(ScalingSearch(args.base, args.res, "gmacs", target=2.0, step=0.1, tolerance=0.1, phis=1,
                                        max_candidates=args.grid_points, batch=SETTING.batch, objective="accuracy",
                                        seeds=args.seeds), out / "flops-grid", proxy, table=table)  # fmt: skip
    clock["flops-grid"] = _min(start)
    start = time.time()
    budget = front_budget(out, fam[-1], args)
    search_stages(StageSearch(args.base, args.res, budget_ms=budget, mode="eval", batch=SETTING.batch,
                                      trials=args.trials, objective="accuracy", seeds=args.seeds),
                          out / "front", proxy, table=table)  # fmt: skip
    clock["front"] = _min(start)
    sides = {"family": [*fam, _row(grid["winner"], "flops-grid winner")],
             "searched": [_row(r, r["label"]) for r in _csv(out / "front" / "pareto.csv")]}  # fmt: skip
    networks = joint_axis(sides, args)
    verdict, hv = judge(networks, args.bootstrap)
    for r in networks:
        r["cpu"] = cpu
    write_csv(out / "demo_networks.csv", networks)
    write_csv(out / "demo_verdict.csv", [v | {"cpu": cpu} for v in verdict])
    summary = {"cpu": cpu, "proxy": {"res": args.res, "epochs": args.epochs, "base_top1": base["top1"],
               "base_top1_std": base["top1_std"], "base_seeds": base["top1_seeds"]}, "hypervolume": hv,
               "minutes": clock, "front_compute": compute_against_full(out / "front", args.epochs),
               "grid_compute": compute_against_full(out / "flops-grid", args.epochs)}  # fmt: skip
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=1))
    draw(networks, out / "front.png", args)
    print(json.dumps(summary, indent=1), flush=True)
    for v in verdict:
        print(v, flush=True)


def family_runs(out: Path, proxy: ProxyRun, args) -> list[dict]:
    """The base scaled by the paper's coefficients, φ = 0…3, each trained ``--seeds`` times (a rerun reads the runs
    that finished)."""
    cfg = get_entry(args.base).config
    rows = []
    for phi, scaled, res in family(cfg, args.res, PAPER, range(0, 4)):
        arch = write_arch(out / f"phi{phi}.yaml", scaled, args.base, comment=f"phi {phi} of the paper's coefficients")
        tops = []
        for seed in range(args.seeds):
            done = (out / "runs" / f"phi{phi}.seed{seed}" / "metrics.csv").exists()
            result = proxy_train(str(arch), res, replace(proxy, seed=seed), str(out / "runs"), f"phi{phi}.seed{seed}")
            tops.append(result["top1"])
            print(f"  phi {phi} seed {seed}: top-1 {tops[-1]:.2f}%{' (done before)' if done else ''}",
                  flush=True)  # fmt: skip
        mean, std = mean_spread(tops)
        macs, params = counts(scaled, res)
        rows.append({"side": "family", "label": f"phi{phi}", "arch": str(arch), "res": res,
                     "gmacs": round(macs / 1e9, 4), "params_m": round(params / 1e6, 3), "top1": round(mean, 3),
                     "top1_std": round(std, 3), "top1_seeds": " ".join(f"{t:.2f}" for t in tops)})  # fmt: skip
    return rows


def _row(r: dict, label: str) -> dict:
    keep = ("arch", "res", "gmacs", "params_m", "top1", "top1_std", "top1_seeds")
    return {"label": label, **{k: r[k] for k in keep}}


def joint_axis(sides: dict[str, list[dict]], args) -> list[dict]:
    """Every network of both sides measured in one interleaved session against the base: one latency axis."""
    nets = {f"{side}:{r['label']}": r for side, rows in sides.items() for r in rows}
    ms = _joint_ms(nets, args)
    return [r | {"side": key.split(":")[0], "measured_ms": ms[key], "top1": float(r["top1"]),
                 "top1_std": float(r["top1_std"])} for key, r in nets.items()]  # fmt: skip


def _joint_ms(nets: dict[str, dict], args) -> dict[str, float]:
    print(f"measuring {len(nets)} networks against the base, interleaved", flush=True)
    base, got = measure_against_base(
        (get_entry(args.base).config, args.res), {k: (read_arch(r["arch"])[1], int(r["res"])) for k, r in nets.items()},
        SETTING, max_rounds=9,
    )  # fmt: skip
    return {k: round(m.ratio * base.ms, 3) for k, m in got.items()}


def judge(networks: list[dict], rounds: int) -> tuple[list[dict], dict]:
    """The hypervolume of each side with its bootstrap over seeds, and the searched front at each family latency."""
    ref = (max(r["measured_ms"] for r in networks) * 1.05, min(r["top1"] for r in networks) - 1.0)
    sides = {s: [r for r in networks if r["side"] == s] for s in ("family", "searched")}
    rng = random.Random(0)
    draws: dict[str, list[float]] = {s: [] for s in sides}
    for _ in range(rounds):
        for s, rows in sides.items():
            pts = []
            for r in rows:
                seeds = [float(t) for t in str(r["top1_seeds"]).split()]
                pts.append((r["measured_ms"], statistics.fmean(rng.choice(seeds) for _ in seeds)))
            draws[s].append(hypervolume(pts, ref))
    hv: dict = {s: {"value": round(hypervolume([(r["measured_ms"], r["top1"]) for r in rows], ref), 3),
                    "bootstrap_low": round(_quantile(draws[s], 0.025), 3),
                    "bootstrap_high": round(_quantile(draws[s], 0.975), 3)} for s, rows in sides.items()}  # fmt: skip
    wins = sum(a > b for a, b in zip(draws["searched"], draws["family"], strict=True)) / rounds
    hv["reference"] = {"latency_ms": round(ref[0], 3), "top1": round(ref[1], 3)}
    hv["p_searched_larger"] = round(wins, 4)
    verdict = []
    for member in sides["family"]:
        within = [r for r in sides["searched"] if r["measured_ms"] <= member["measured_ms"] * 1.0001]
        best = max(within, key=lambda r: r["top1"], default=None)
        row = {"family": member["label"], "family_ms": member["measured_ms"], "family_top1": member["top1"],
               "family_std": member["top1_std"]}  # fmt: skip
        if best is None:
            verdict.append(row | {"verdict": "no searched network this fast"})
            continue
        diff, spread = best["top1"] - member["top1"], max(best["top1_std"], member["top1_std"])
        verdict.append(row | {"searched": best["label"], "searched_ms": best["measured_ms"], "searched_top1":
                              best["top1"], "searched_std": best["top1_std"], "difference": round(diff, 3),
                              "spread": round(spread, 3),
                              "verdict": "searched better" if diff > spread else "family better" if -diff > spread
                              else "tie"})  # fmt: skip
    return verdict, hv


def compute_against_full(folder: Path, epochs: int) -> dict:
    """The search's compute, and what the same trials and confirmations would have cost with every trial trained to
    the end (each pruned trial's CPU scaled by epochs / the epochs it trained; a pruned trial's confirmations, which
    a survivor would have had, are not added: a lower bound)."""
    summary = json.loads((folder / "search.json").read_text())
    extra = 0.0
    for r in _csv(folder / "candidates.csv"):
        cpu = float(r.get("cpu_s") or 0.0)
        trained = int(float(r.get("epochs") or 0))
        if r["state"] == "pruned" and trained and not r.get("dropped"):
            extra += cpu * (epochs / trained - 1)
    full = summary["cpu_minutes"] * 60 + extra
    keys = ("trials_started", "trials_pruned", "trials_completed", "dropped_by_measurement", "confirmation_runs",
            "cpu_minutes")  # fmt: skip
    return {k: summary[k] for k in keys} | {"search_cpu_minutes_without_pruning": round(full / 60, 2)}


def front_budget(out: Path, phi3: dict, args) -> float:
    """The stage search's budget: the φ = 3 member's measured time, measured once and kept in
    ``OUT/front_budget.json`` (the study remembers its budget: a rerun must give the same one to resume it)."""
    path = out / "front_budget.json"
    if path.is_file():
        return json.loads(path.read_text())["budget_ms"]
    budget = _joint_ms({"phi3": phi3}, args)["phi3"]
    path.write_text(json.dumps({"budget_ms": budget, "measured": "phi3, one forward of a batch of 16"}) + "\n")
    return budget


def draw(networks: list[dict], path: Path, args) -> None:
    series = {
        "FLOPs rule: φ 0–3 and the FLOPs grid's winner": [r for r in networks if r["side"] == "family"],
        "searched (stage search, NSGA-II, pruned)": [r for r in networks if r["side"] == "searched"],
    }
    title = f"{args.base} at {args.res} px on digits\ntop-1 (mean ± sd, {args.seeds} seeds) vs measured latency (b16)"
    plot_pareto(series, path, title=title)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _min(start: float) -> float:
    return round((time.time() - start) / 60, 1)


if __name__ == "__main__":
    main()

"""Where an int8 form's time goes: OpenVINO's own per-node profile (``PERF_COUNT``) of ``openvino-int8`` (NNCF,
calibrated on random batches: a speed figure) for each model, summed by node type and by the kernel that ran it
(e.g. ``brgconv_avx512_amx_I8``: a convolution in int8 on AMX), with each part's share of the time.

    .venv/bin/python benchmarks/int8_profile.py --models resnet50 convnext_tiny --out results/deploy/int8_profile.csv
"""

from __future__ import annotations

import argparse
import collections
import copy
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import write_csv
from convscale import create_model
from convscale.deploy.fuse import fuse
from convscale.deploy.quantize import QuantSettings, quantize_openvino
from convscale.utils.machine import machine


def profile(name: str, res: int, batch: int, runs: int) -> list[dict]:
    import openvino as ov

    fused = fuse(create_model(name).eval())
    x = torch.randn(batch, 3, res, res)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        model = ov.convert_model(copy.deepcopy(fused), example_input=x, input=[tuple(x.shape)])
    model = quantize_openvino(model, fused, [torch.randn_like(x) for _ in range(2)], QuantSettings())
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERF_COUNT": True}
    request = ov.Core().compile_model(model, "CPU", config).create_infer_request()
    totals: dict[tuple[str, str], float] = collections.defaultdict(float)
    for i in range(runs + 2):
        request.infer([x.numpy()])
        if i < 2:
            continue  # warm-up
        for node in request.get_profiling_info():
            totals[(node.node_type, node.exec_type)] += node.real_time.total_seconds() * 1e3 / runs
    whole = sum(totals.values())
    rows = [
        {
            "model": name,
            "res": res,
            "batch": batch,
            "node_type": t,
            "kernel": k,
            "ms": round(ms, 3),
            "share": round(ms / whole, 4),
        }
        for (t, k), ms in sorted(totals.items(), key=lambda kv: -kv[1])
        if ms > 0
    ]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["resnet50", "convnext_tiny", "repvgg_a0", "dm_nfnet_f0"])
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("results/deploy/int8_profile.csv"))
    args = p.parse_args()
    print(machine().describe(), flush=True)
    rows = []
    for name in args.models:
        got = profile(name, 192 if name == "dm_nfnet_f0" else args.res, args.batch, args.runs)
        rows += got
        total = sum(r["ms"] for r in got)
        print(f"{name}: {total:.1f} ms summed over nodes", flush=True)
        for r in got[:6]:
            print(f"  {r['node_type']:22s} {r['kernel']:32s} {r['ms']:8.2f} ms {100 * r['share']:5.1f}%", flush=True)
        write_csv(args.out, rows)


if __name__ == "__main__":
    main()

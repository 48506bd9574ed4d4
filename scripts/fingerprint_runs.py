"""Fingerprints of the weights two training runs end with, to show that a refactoring changes nothing: ``make demo``'s
run (the defaults: ResNet-18 on synthetic-shapes, EMA on) and a short run that uses SAM, AGC and distillation together.

Both runs are pinned to fp32 (``--amp none``): with ``--amp auto`` the precision is chosen by a timing, which may differ
between two runs of the same code. Each fingerprint is the SHA-256 of every tensor of one weight set of the run's
checkpoint, in name order (names, dtypes, shapes and bytes). Run it before and after a change, on the same machine,
and compare the printed lines:

    python scripts/fingerprint_runs.py OUT            # both runs (the demo takes about 4.5 minutes on 2 cores)
    python scripts/fingerprint_runs.py OUT --only methods
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open

PINNED = ["--amp", "none"]  # the precision is not left to a timing
SMALL = ["--shapes-train", "256", "--shapes-val", "64", "--batch-size", "32", "--workers", "0", "--seed", "3"]
RUNS = {
    "demo": [["--name", "demo"]],
    "methods": [
        ["--name", "teacher", "--epochs", "1", *SMALL],
        [
            "--name", "sam-agc-distill", "--epochs", "2", "--sam", "0.05", "--agc", "0.01", "--teacher",
            "{out}/teacher", "--distill", "kd", *SMALL,
        ],
    ],
}  # fmt: skip


def fingerprint(checkpoint: Path, part: str) -> str:
    """SHA-256 over the tensors of one weight set (``model`` or ``ema``) of a run checkpoint, in name order."""
    digest = hashlib.sha256()
    with safe_open(str(checkpoint), framework="pt") as f:
        for key in sorted(k for k in f.keys() if k.startswith(part + ".")):
            tensor = f.get_tensor(key).contiguous()
            digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="an empty folder for the runs")
    parser.add_argument("--only", choices=sorted(RUNS), help="one of the two runs")
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):  # a run already there would be read instead of the new one
        sys.exit(f"{args.out} is not empty: give a new folder")
    convscale = Path(sys.executable).with_name("convscale")
    for name in [args.only] if args.only else sorted(RUNS):
        for flags in RUNS[name]:
            flags = [f.format(out=args.out) for f in flags] + PINNED
            cmd = [str(convscale), "train", "--out", str(args.out), *flags]
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode:
                sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        run = args.out / RUNS[name][-1][1]
        for part in ("model", "ema"):
            print(f"{name} {part} {fingerprint(run / 'checkpoints' / 'last.safetensors', part)}")


if __name__ == "__main__":
    main()

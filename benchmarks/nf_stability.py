"""Stability experiment: an NF-ResNet at a learning rate where plain SGD diverges, with and without AGC.

A minimal loop (the training engine has not landed): synthetic 10-class data (Gaussian class prototypes plus noise,
so there is something to learn), SGD with Nesterov momentum, the same seed and batches for every run. Reported per
run: the final training loss, the step at which the loss first became non-finite or exceeded 1e3 (diverged), and
the accuracy on a held-out batch.

    .venv/bin/python benchmarks/nf_stability.py --out results/bench/nf_stability.csv
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

import convscale
from common import write_csv
from convscale.methods.agc import agc_parameters, attach_agc


def make_data(n: int, res: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(classes, 3, res, res, generator=torch.Generator().manual_seed(1234))
    labels = torch.randint(0, classes, (n,), generator=g)
    images = prototypes[labels] + 1.5 * torch.randn(n, 3, res, res, generator=g)
    return images, labels


def run(model_name: str, lr: float, batch: int, steps: int, clip: float | None, res: int, seed: int) -> dict:
    torch.manual_seed(seed)
    model = convscale.create_model(model_name, num_classes=10, drop_path_rate=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True)
    if clip is not None:
        attach_agc(opt, agc_parameters(model), clip_factor=clip)
    x_all, y_all = make_data(batch * steps, res, 10, seed)
    x_val, y_val = make_data(512, res, 10, seed + 1)
    diverged_at, loss = None, float("nan")
    for step in range(steps):
        x, y = x_all[step * batch : (step + 1) * batch], y_all[step * batch : (step + 1) * batch]
        loss_t = F.cross_entropy(model(x), y)
        loss = loss_t.item()
        if not math.isfinite(loss) or loss > 1e3:
            diverged_at = step
            break
        opt.zero_grad(set_to_none=True)
        loss_t.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x_val).argmax(1) == y_val).float().mean().item() if diverged_at is None else float("nan")
    return {
        "model": model_name,
        "lr": lr,
        "batch": batch,
        "steps": steps,
        "agc": clip if clip else "off",
        "final_loss": round(loss, 4),
        "diverged_at_step": diverged_at,
        "val_top1": round(acc, 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="test_nf_resnet")
    p.add_argument("--lrs", type=float, nargs="+", default=[0.1, 1.6])
    p.add_argument("--clips", type=float, nargs="+", default=[0.01, 0.04])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    rows = []
    for lr in args.lrs:
        for clip in [None, *args.clips]:
            row = run(args.model, lr, args.batch, args.steps, clip, args.res, args.seed)
            print(row)
            rows.append(row)
    if args.out:
        write_csv(args.out, rows)


if __name__ == "__main__":
    main()

"""How hard synthetic-shapes is: a linear classifier on raw pixels (multinomial logistic regression, trained to
convergence with L-BFGS) on the default splits. The default training run (`convscale train`) is the other end.

    PY benchmarks/shapes_difficulty.py [--res 32] [--train 10000] [--val 2000] --out results/train/shapes_linear.csv

A benchmark, not a test.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import write_csv
from convscale.data import make_datasets


def pixels(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    x = np.stack([np.asarray(dataset[i][0], np.float32) / 255 for i in range(len(dataset))])
    return torch.from_numpy(x).flatten(1), torch.tensor(dataset.targets)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--train", type=int, default=10_000)
    p.add_argument("--val", type=int, default=2_000)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    train, val, classes, _ = make_datasets(
        "synthetic-shapes", shapes_train=args.train, shapes_val=args.val, shapes_res=args.res, workers=2
    )
    x, y = pixels(train)
    xv, yv = pixels(val)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, xv = (x - mean) / std, (xv - mean) / std
    w = torch.zeros(x.shape[1], len(classes), requires_grad=True)
    b = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=500, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + args.weight_decay * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        train_top1 = 100 * ((x @ w + b).argmax(1) == y).float().mean().item()
        val_top1 = 100 * ((xv @ w + b).argmax(1) == yv).float().mean().item()
    row = {
        "res": args.res,
        "train": args.train,
        "val": args.val,
        "weight_decay": args.weight_decay,
        "linear_train_top1": round(train_top1, 2),
        "linear_val_top1": round(val_top1, 2),
        "chance": 100 / len(classes),
    }
    print(row)
    if args.out:
        write_csv(args.out, [row])


if __name__ == "__main__":
    main()

"""Which ConvNeXt block layout is faster here: channels-last LayerNorm + Linear MLP, or LayerNorm over channels +
1×1 convs on (N, C, H, W)? The two compute the same function; this times both in one process, interleaved.

    .venv/bin/python benchmarks/convnext_layout.py --out docs/bench/convnext_layout.csv

The library's ConvNeXtBlock uses the layout this measured faster (see models/convnext.py). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import torch
from torch import nn

import convscale
from common import interleaved, write_csv
from convscale.layers import LayerNorm2d
from convscale.models.convnext import ConvNeXtBlock


class ConvMlpBlock(nn.Module):
    """The same block with the (N, C, H, W) layout: LayerNorm over channels, 1×1 convs, no permutes."""

    def __init__(self, block: ConvNeXtBlock) -> None:
        super().__init__()
        dim, hidden = block.mlp.fc1.in_features, block.mlp.fc1.out_features
        self.conv_dw = block.conv_dw
        self.norm = LayerNorm2d(dim, eps=block.norm.eps)
        self.norm.load_state_dict(block.norm.state_dict())
        self.fc1, self.act, self.fc2 = nn.Conv2d(dim, hidden, 1), nn.GELU(), nn.Conv2d(hidden, dim, 1)
        with torch.no_grad():
            for conv, lin in ((self.fc1, block.mlp.fc1), (self.fc2, block.mlp.fc2)):
                conv.weight.copy_(lin.weight[:, :, None, None])
                conv.bias.copy_(lin.bias)
        self.gamma = nn.Parameter(block.ls.gamma.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc2(self.act(self.fc1(self.norm(self.conv_dw(x)))))
        return x + y * self.gamma.view(1, -1, 1, 1)


def conv_layout(model: nn.Module) -> nn.Module:
    other = copy.deepcopy(model)
    for stage in other.stages:
        stage.blocks = nn.Sequential(*(ConvMlpBlock(b) for b in stage.blocks))
    return other


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="convnext_tiny")
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    torch.manual_seed(0)
    linear = convscale.create_model(args.model).eval().to(memory_format=torch.channels_last)
    conv = conv_layout(linear).eval().to(memory_format=torch.channels_last)
    x = torch.randn(args.batch, 3, args.res, args.res).to(memory_format=torch.channels_last)
    with torch.no_grad():
        a, b = linear(x), conv(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # the same function
    xt = x[: args.train_batch]
    models = {"linear (N,H,W,C)": linear, "1x1 conv (N,C,H,W)": conv}

    def infer(m):
        with torch.inference_mode():
            m(x)

    def train(m):
        m.zero_grad(set_to_none=True)
        m(xt).sum().backward()

    rows = []
    for mode, fn in (("eval", infer), ("train step", train)):
        for m in models.values():
            m.train(mode != "eval")
        times = interleaved({k: (lambda m=m, fn=fn: fn(m)) for k, m in models.items()}, args.rounds, 2)
        for label, ts in times.items():
            rows.append(
                {
                    "model": args.model,
                    "mode": mode,
                    "layout": label,
                    "res": args.res,
                    "batch": args.batch if mode == "eval" else args.train_batch,
                    "median_ms": round(statistics.median(ts) * 1e3, 1),
                    "threads": torch.get_num_threads(),
                }
            )
    base = {r["mode"]: r["median_ms"] for r in rows if r["layout"].startswith("linear")}
    for r in rows:
        r["vs_linear"] = round(r["median_ms"] / base[r["mode"]], 3)
        print(f"{r['mode']:10s} {r['layout']:20s} {r['median_ms']:8.1f} ms  ×{r['vs_linear']:.3f}")
    if args.out:
        write_csv(args.out, rows)


if __name__ == "__main__":
    main()

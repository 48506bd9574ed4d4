"""Squeeze-and-Excitation (Hu et al., 2018), in the form used by EfficientNet and MobileNetV3."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .activations import ActLayer, create_act
from .helpers import ceil_divisible, make_divisible

__all__ = ["SEConfig", "SqueezeExcite", "se_channels"]


def se_channels(
    in_chs: int,
    mid_chs: int,
    ratio: float,
    *,
    from_expanded: bool = False,
    divisor: int | None = None,
    ceil: bool = False,
) -> int:
    """Width of the SE bottleneck.

    EfficientNet (V1 and V2) takes ``ratio`` of the block's *input* channels (``int(in_chs * 0.25)``, TPU code);
    MobileNetV3 takes it of the *expanded* channels and rounds to a multiple of 8 (``divisor=8``); AsymmNet takes
    ``int(C * ratio)`` of its (concatenated) width and rounds that *up* to the divisor (``ceil=True``).
    """
    base = mid_chs if from_expanded else in_chs
    if divisor and ceil:
        return ceil_divisible(int(base * ratio), divisor)
    if divisor:
        return make_divisible(base * ratio, divisor)
    return max(1, int(base * ratio))


class SqueezeExcite(nn.Module):
    """Global mean → 1×1 conv ``reduce`` → act → 1×1 conv ``expand`` → gate → rescale the input channels."""

    def __init__(
        self, channels: int, rd_channels: int, *, act_layer: ActLayer = "relu", gate_layer: ActLayer = "sigmoid"
    ) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.act = create_act(act_layer, inplace=True)
        self.expand = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = create_act(gate_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (N, C, H, W) -> (N, C, 1, 1)
        s = self.expand(self.act(self.reduce(s)))
        return x * self.gate(s)


@dataclass(frozen=True)
class SEConfig:
    """How a block builds its squeeze-excite: the ratio, which width it is taken of, and its activations."""

    ratio: float = 0.25
    from_expanded: bool = False
    divisor: int | None = None
    act_layer: ActLayer = None  # None: the block's own activation
    gate_layer: ActLayer = "sigmoid"
    ceil: bool = False  # round the bottleneck width up to the divisor (AsymmNet), not to the nearest multiple

    def build(self, in_chs: int, mid_chs: int, block_act: ActLayer) -> SqueezeExcite:
        rd = se_channels(
            in_chs, mid_chs, self.ratio, from_expanded=self.from_expanded, divisor=self.divisor, ceil=self.ceil
        )
        return SqueezeExcite(mid_chs, rd, act_layer=self.act_layer or block_act, gate_layer=self.gate_layer)

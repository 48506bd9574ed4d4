"""Ghost modules and the Ghost bottleneck (Han et al., 2020, GhostNet).

A Ghost module makes half its output channels with an ordinary 1×1 conv (``primary``) and the other half from those
with a cheap depthwise 3×3 conv (``cheap``): "ghost" feature maps at a fraction of the multiply-adds. The bottleneck
is ghost (expand, with act) → [depthwise k×k, stride 2] → [SE] → ghost (project, linear) + shortcut.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .activations import ActLayer
from .conv_norm_act import ConvNormAct
from .drop import DropPath
from .squeeze_excite import SEConfig

__all__ = ["GhostBottleneck", "GhostModule"]


class GhostModule(nn.Module):
    """``primary`` 1×1 conv to ceil(out/2) channels, ``cheap`` depthwise 3×3 on its output; both concatenated."""

    def __init__(self, in_chs: int, out_chs: int, *, act_layer: ActLayer = "relu", dw_size: int = 3) -> None:
        super().__init__()
        self.out_chs = out_chs
        init_chs = math.ceil(out_chs / 2)
        self.primary = ConvNormAct(in_chs, init_chs, 1, act_layer=act_layer)
        self.cheap = ConvNormAct(init_chs, init_chs, dw_size, groups=init_chs, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary(x)  # intrinsic maps
        x2 = self.cheap(x1)  # ghost maps: a cheap linear transform of each intrinsic map
        out = torch.cat([x1, x2], dim=1)
        return out if out.shape[1] == self.out_chs else out[:, : self.out_chs]


class GhostBottleneck(nn.Module):
    """``ghost1`` → [``dw`` k×k/2 + BN] → [``se``] → ``ghost2`` (+ shortcut: the input, or dw k×k + BN → 1×1 + BN)."""

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        se: SEConfig | None = None,
        act_layer: ActLayer = "relu",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.ghost1 = GhostModule(in_chs, mid_chs, act_layer=act_layer)
        dw = dict(groups=mid_chs, act_layer=None)
        self.dw = ConvNormAct(mid_chs, mid_chs, kernel_size, stride, **dw) if stride > 1 else nn.Identity()
        self.se = se.build(in_chs, mid_chs, act_layer) if se else nn.Identity()
        self.ghost2 = GhostModule(mid_chs, out_chs, act_layer=None)
        if in_chs == out_chs and stride == 1:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                ConvNormAct(in_chs, in_chs, kernel_size, stride, groups=in_chs, act_layer=None),
                ConvNormAct(in_chs, out_chs, 1, act_layer=None),
            )
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ghost1(x)  # expand
        out = self.dw(out)  # spatial reduction (stride-2 blocks only)
        out = self.se(out)
        out = self.ghost2(out)  # linear projection
        out = self.drop_path(out)
        out += self.shortcut(x)
        return out

"""The ShuffleNetV2 unit (Ma et al., 2018): channel split, one branch of three convs, concat, channel shuffle.

Built on the paper's guidelines: equal widths in and out of each 1×1 conv (G1), no group convs (G2), two branches
only (G3), and the concat + shuffle instead of an element-wise add (G4). A stride-2 unit has no split: both branches
see the whole input and the width doubles.
"""

from __future__ import annotations

import torch
from torch import nn

from .conv_norm_act import ConvNormAct

__all__ = ["ShuffleUnit", "channel_shuffle"]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, g·c, H, W) → interleave the ``groups`` blocks of channels: channel i·c + j goes to j·g + i."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """stride 1: split → (identity, ``branch2``) → concat → shuffle; stride 2: (``branch1``, ``branch2``) → concat →
    shuffle. ``branch2`` is 1×1 + ReLU → depthwise 3×3 → 1×1 + ReLU; ``branch1`` is depthwise 3×3 → 1×1 + ReLU."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        if out_chs % 2 or (stride == 1 and in_chs != out_chs):
            raise ValueError(f"a stride-{stride} ShuffleNetV2 unit cannot map {in_chs} to {out_chs} channels")
        self.stride = stride
        branch = out_chs // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                ConvNormAct(in_chs, in_chs, 3, stride, groups=in_chs, act_layer=None),
                ConvNormAct(in_chs, branch, 1),
            )
        else:
            self.branch1 = None
        self.branch2 = nn.Sequential(
            ConvNormAct(in_chs if stride > 1 else branch, branch, 1),
            ConvNormAct(branch, branch, 3, stride, groups=branch, act_layer=None),
            ConvNormAct(branch, branch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is None:
            keep, x = x.chunk(2, dim=1)  # channel split: half passes through untouched
            out = torch.cat((keep, self.branch2(x)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)

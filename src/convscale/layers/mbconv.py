"""The inverted-residual blocks of the MobileNetV2 / EfficientNet line, one implementation each.

``MBConv`` (Sandler et al., 2018; Tan & Le, 2019) is shared by EfficientNet V1/V2, the MobileNets and AsymmNet: expand
1×1 → depthwise k×k → squeeze-excite → project 1×1, with a residual when the shape is kept. With ``expand_ratio == 1``
it has no expansion conv (EfficientNet's MBConv1, MobileNetV2's first block). AsymmNet's asymmetrical bottleneck (Yang
et al., 2021) is its feature-reuse option (``reuse=r``): the expansion computes only ``mid − r·in`` channels and the
depthwise conv sees ``[x]·r, expand(x), [x]·r`` concatenated (``mid + r·in`` channels), the block input reused.
``FusedMBConv`` (EfficientNetV2, §3.2) replaces the expansion and depthwise convs by one regular k×k conv.
"""

from __future__ import annotations

import torch
from torch import nn

from .activations import ActLayer
from .conv import Padding
from .conv_norm_act import ConvNormAct
from .drop import DropPath
from .helpers import make_divisible
from .norm import NormLayer
from .squeeze_excite import SEConfig

__all__ = ["FusedMBConv", "MBConv"]


class MBConv(nn.Module):
    """Mobile inverted bottleneck: ``expand`` → ``dw`` → ``se`` → ``project`` (+ input when the shape is kept).

    The projection is linear (no activation), the paper's "linear bottleneck". Drop path is applied to the branch
    before the residual add, as in the TPU code's drop-connect.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        expand_ratio: float = 6.0,
        se: SEConfig | None = None,
        act_layer: ActLayer = "silu",
        norm_layer: NormLayer = "batchnorm",
        padding: Padding = "symmetric",
        drop_path_rate: float = 0.0,
        noskip: bool = False,
        mid_chs: int | None = None,
        reuse: int = 0,
    ) -> None:
        super().__init__()
        explicit = mid_chs is not None
        if mid_chs is None:
            mid_chs = make_divisible(in_chs * expand_ratio) if expand_ratio != 1 else in_chs
        if reuse:  # AsymmNet expands only when the expanded width exceeds what reusing the input gives
            expands = mid_chs > max(in_chs, reuse * in_chs)
        else:
            expands = mid_chs != in_chs if explicit else expand_ratio != 1
        self.reuse = reuse if expands else 0
        self.has_skip = stride == 1 and in_chs == out_chs and not noskip
        cna = dict(norm_layer=norm_layer, padding=padding)
        computed = mid_chs - self.reuse * in_chs  # what the expansion computes; the reused input fills the rest
        self.expand = ConvNormAct(in_chs, computed, 1, act_layer=act_layer, **cna) if expands else nn.Identity()
        mid_chs = computed + 2 * self.reuse * in_chs if expands else in_chs  # what the depthwise conv sees
        self.dw = ConvNormAct(mid_chs, mid_chs, kernel_size, stride, groups=mid_chs, act_layer=act_layer, **cna)
        self.se = se.build(in_chs, mid_chs, act_layer) if se else nn.Identity()
        self.project = ConvNormAct(mid_chs, out_chs, 1, act_layer=None, **cna)
        self.drop_path = DropPath(drop_path_rate) if self.has_skip and drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.reuse:  # AsymmNet: (N, C_in, H, W) -> [x]·r, expand(x), [x]·r: (N, C_mid + r·C_in, H, W)
            x = torch.cat([x] * self.reuse + [self.expand(x)] + [x] * self.reuse, dim=1)
        else:
            x = self.expand(x)  # (N, C_in, H, W) -> (N, C_mid, H, W)
        x = self.dw(x)  # depthwise k×k, stride s: -> (N, C_mid, H/s, W/s)
        x = self.se(x)
        x = self.project(x)  # linear bottleneck: -> (N, C_out, H/s, W/s)
        if self.has_skip:
            x = self.drop_path(x)
            x += shortcut  # in place: the branch output is not needed for the backward pass
        return x


class FusedMBConv(nn.Module):
    """Fused-MBConv: ``fused`` k×k conv (stride s) → ``se`` → ``project`` 1×1 (+ input when the shape is kept).

    With ``expand_ratio == 1`` the block is the single k×k conv → BN → act ("add act if no expansion", AutoML code)
    and has no projection.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        *,
        expand_ratio: float = 4.0,
        se: SEConfig | None = None,
        act_layer: ActLayer = "silu",
        norm_layer: NormLayer = "batchnorm",
        padding: Padding = "symmetric",
        drop_path_rate: float = 0.0,
        noskip: bool = False,
    ) -> None:
        super().__init__()
        expands = expand_ratio != 1
        mid_chs = make_divisible(in_chs * expand_ratio) if expands else out_chs
        self.has_skip = stride == 1 and in_chs == out_chs and not noskip
        cna = dict(norm_layer=norm_layer, padding=padding)
        self.fused = ConvNormAct(in_chs, mid_chs, kernel_size, stride, act_layer=act_layer, **cna)
        self.se = se.build(in_chs, mid_chs, act_layer) if se else nn.Identity()
        self.project = ConvNormAct(mid_chs, out_chs, 1, act_layer=None, **cna) if expands else nn.Identity()
        self.projects = expands
        self.drop_path = DropPath(drop_path_rate) if self.has_skip and drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.fused(x)  # regular k×k, stride s: (N, C_in, H, W) -> (N, C_mid, H/s, W/s)
        x = self.se(x)
        x = self.project(x)  # -> (N, C_out, H/s, W/s)
        if self.has_skip:
            x = self.drop_path(x)
            # in place only after the linear projection: without it the branch ends in its activation, whose
            # output ReLU's backward pass reads (MobileNetV3's ReLU stages with Fused-MBConv1 rows)
            x = x.add_(shortcut) if self.projects else x + shortcut
        return x

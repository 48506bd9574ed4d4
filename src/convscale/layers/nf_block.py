"""The normalizer-free residual block (Brock et al., 2021a/b) and the activation constants it relies on.

Without batch norm the block keeps the signal's scale analytically: its input is divided by ``beta`` (the expected
std of the incoming signal) and its branch is added with weight ``alpha``, so the variance grows by α² per block and
is reset to 1 after each transition block, whose shortcut starts from the normalized input (NF-ResNet paper §4).
"""

from __future__ import annotations

import torch
from torch import nn

from .activations import get_act_layer
from .drop import DropPath
from .helpers import make_divisible
from .squeeze_excite import SqueezeExcite

__all__ = ["NF_GAMMA", "GammaAct", "NFBlock"]

#: 1 / std(act(z)) for z ~ N(0, 1): the constant that makes each activation variance preserving (DeepMind's table).
NF_GAMMA = {
    "identity": 1.0,
    "relu": 1.7139588594436646,
    "gelu": 1.7015043497085571,
    "silu": 1.7881293296813965,
    "relu6": 1.7131484746932983,
    "elu": 1.2716004848480225,
    "leaky_relu": 1.70590341091156,
    "selu": 1.0008515119552612,
    "tanh": 1.5939117670059204,
    "sigmoid": 4.803835391998291,
    "softplus": 1.9203323125839233,
}


class GammaAct(nn.Module):
    """``act(x) · gamma``: an activation scaled to preserve variance (DeepMind's layout; ``gamma=1``: plain act)."""

    def __init__(self, act_layer: str, gamma: float = 1.0) -> None:
        super().__init__()
        self.act = get_act_layer(act_layer)()
        self.gamma = gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        return x * self.gamma if self.gamma != 1.0 else x

    def extra_repr(self) -> str:
        return f"gamma={self.gamma:.6g}"


class NFBlock(nn.Module):
    """NF bottleneck: act·β → [shortcut] → 1×1 → 3×3 (stride, groups) → [3×3] → 1×1 → [2·SE] → drop path →
    [skip gain] → ·α + shortcut.

    The shortcut is the input itself, or, where the shape changes, a 1×1 conv of the average-pooled, pre-activated
    (normalized) input. Stochastic depth does not rescale kept samples (NFNet code). ``conv`` is the (scaled
    weight-standardized) conv factory, ``act`` the activation factory.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int,
        *,
        alpha: float,
        beta: float,
        conv,
        act,
        bottle_ratio: float = 0.5,
        group_size: int | None = None,
        extra_conv: bool = False,
        se_ratio: float | None = None,
        skipinit: bool = False,
        conv3_gain: float = 1.0,
        pool_shortcut: bool = True,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        mid_chs = make_divisible(out_chs * bottle_ratio, 8)
        groups = mid_chs // group_size if group_size else 1
        if group_size and group_size % 8 == 0:
            mid_chs = group_size * groups
        self.alpha, self.beta = alpha, beta
        if stride > 1 or in_chs != out_chs:
            # NFNet and timm: 2×2 average pool, then a 1×1 conv; DeepMind's NF-ResNet: a strided 1×1 conv
            pooled = pool_shortcut and stride > 1
            pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if pooled else nn.Identity()
            self.downsample = nn.Sequential()
            self.downsample.add_module("pool", pool)
            self.downsample.add_module("conv", conv(in_chs, out_chs, 1, 1 if pooled else stride))
        else:
            self.downsample = None
        self.act1 = act()
        self.conv1 = conv(in_chs, mid_chs, 1)
        self.act2 = act()
        self.conv2 = conv(mid_chs, mid_chs, 3, stride, groups=groups)
        self.act2b = act() if extra_conv else None
        self.conv2b = conv(mid_chs, mid_chs, 3, 1, groups=groups) if extra_conv else None
        self.act3 = act()
        self.conv3 = conv(mid_chs, out_chs, 1, gain_init=conv3_gain)
        self.se = SqueezeExcite(out_chs, make_divisible(out_chs * se_ratio, 8, round_limit=0.0)) if se_ratio else None
        self.drop_path = DropPath(drop_path_rate, scale_by_keep=False) if drop_path_rate > 0 else nn.Identity()
        self.skipinit_gain = nn.Parameter(torch.zeros(())) if skipinit else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(x) * self.beta  # normalized, pre-activated input
        shortcut = self.downsample(out) if self.downsample is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act2(out))
        if self.conv2b is not None:
            out = self.conv2b(self.act2b(out))
        out = self.conv3(self.act3(out))
        if self.se is not None:
            out = 2.0 * self.se(out)  # ×2 keeps the variance the sigmoid gate (≈0.5 on average) halves
        out = self.drop_path(out)
        if self.skipinit_gain is not None:
            out = out * self.skipinit_gain
        return out * self.alpha + shortcut

"""Scaled weight standardization (Brock et al., 2021a, §3; NFNets §3): the conv that replaces batch norm.

Each output unit's weights are standardized over their fan-in and scaled by ``gain · γ / sqrt(fan_in)``:

    Ŵ_i = gain_i · γ · (W_i − mean(W_i)) / sqrt(fan_in · (var(W_i) + eps))

``γ`` is the activation's variance-preserving constant when it is folded into the conv (timm's default, cheaper in
PyTorch), or 1 when the activations carry it themselves (DeepMind's layout, ``dm_nfnet_*``).
eps: added to the variance, as timm does (1e-5 in the NFNet configs). DeepMind's code instead clamps
``var · fan_in`` below at 1e-4; the two agree unless a unit's weights are nearly constant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import Padding, is_strided_pointwise, pad_same, subsample, symmetric_padding

__all__ = ["ScaledStdConv2d"]


class ScaledStdConv2d(nn.Conv2d):
    """Conv2d whose weight is standardized per output unit on every call; learnable per-unit ``gain``."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int = 1,
        *,
        groups: int = 1,
        bias: bool = True,
        padding: Padding = "symmetric",
        gamma: float = 1.0,
        eps: float = 1e-5,
        gain_init: float = 1.0,
    ) -> None:
        self.dynamic_pad = padding == "same" and (stride > 1 or (kernel_size - 1) % 2 == 1)
        pad = 0 if self.dynamic_pad else symmetric_padding(kernel_size, stride)
        super().__init__(in_chs, out_chs, kernel_size, stride, pad, groups=groups, bias=bias)
        self.gain = nn.Parameter(torch.full((out_chs, 1, 1, 1), float(gain_init)))
        self.scale = gamma * self.weight[0].numel() ** -0.5  # γ / sqrt(fan_in)
        self.eps = eps

    def standardized_weight(self) -> torch.Tensor:
        w = self.weight.reshape(self.out_channels, -1)  # (O, I·kh·kw): one row per output unit
        var, mean = torch.var_mean(w, dim=1, unbiased=False, keepdim=True)
        w = (w - mean) * torch.rsqrt(var + self.eps)
        return w.reshape_as(self.weight) * (self.gain * self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.standardized_weight()
        if is_strided_pointwise(self.kernel_size, self.stride):  # as StridedPointwiseConv2d (DeepMind's shortcut)
            return F.conv2d(subsample(x, self.stride), weight, self.bias, 1, 0, self.dilation, self.groups)
        if self.dynamic_pad:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", eps={self.eps}, scale={self.scale:.4g}"

"""Folding batch norm into the layer before it: the arithmetic behind re-parameterization and ``deploy.fuse``.

An eval-mode BN is the per-channel affine ``y = (x - μ) · t + β`` with ``t = γ / sqrt(σ² + eps)``; after a conv or
linear layer ``x = W·z + b`` it folds into ``W' = W · t`` (per output unit) and ``b' = (b - μ) · t + β``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import Conv2dSame, StridedPointwiseConv2d, is_strided_pointwise

__all__ = ["bn_scale_shift", "fold_bn", "folded_conv", "identity_kernel", "pad_kernel"]


def bn_scale_shift(bn: nn.BatchNorm2d | nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, s) such that ``bn(x) == x · t + s`` per channel, in eval mode."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a batch norm without running statistics (track_running_stats=False)")
    t = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        t = t * bn.weight
    shift = -bn.running_mean * t
    if bn.bias is not None:
        shift = shift + bn.bias
    return t, shift


def fold_bn(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d | nn.BatchNorm1d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the layer ``weight, bias`` followed by ``bn``, as one layer (computed in float64 and
    rounded once to the weight's dtype)."""
    dtype = weight.dtype
    t, shift = (v.double() for v in bn_scale_shift(bn))
    w = weight.double() * t.reshape(-1, *([1] * (weight.ndim - 1)))
    b = shift if bias is None else bias.double() * t + shift
    return w.to(dtype), b.to(dtype)


def identity_kernel(channels: int, groups: int, kernel_size: int, like: torch.Tensor) -> torch.Tensor:
    """The k×k (grouped) conv kernel that maps each channel to itself."""
    k = torch.zeros(channels, channels // groups, kernel_size, kernel_size, dtype=like.dtype, device=like.device)
    idx = torch.arange(channels, device=like.device)
    k[idx, idx % (channels // groups), kernel_size // 2, kernel_size // 2] = 1.0
    return k


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """A smaller odd kernel zero-padded to ``size``×``size`` around its centre (1×1 → 3×3)."""
    pad = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, [pad, pad, pad, pad])


def folded_conv(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    """A plain conv with ``conv``'s geometry and padding rule (TF 'same' stays :class:`Conv2dSame`, a strided 1×1
    :class:`StridedPointwiseConv2d`) and the given weight and bias."""
    same = isinstance(conv, Conv2dSame) or getattr(conv, "dynamic_pad", False)
    geometry = dict(stride=conv.stride, dilation=conv.dilation, groups=conv.groups, bias=bias is not None)
    if is_strided_pointwise(conv.kernel_size, conv.stride):
        out = StridedPointwiseConv2d(conv.in_channels, conv.out_channels, 1, **geometry)
    elif same:
        out = Conv2dSame(conv.in_channels, conv.out_channels, conv.kernel_size, **geometry)
    else:
        out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding, **geometry)
    out = out.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None:
            out.bias.copy_(bias)
    return out

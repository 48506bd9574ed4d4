"""2-D convolution with PyTorch-style symmetric padding or TensorFlow-style 'same' padding.

TensorFlow's 'same' pads ``max((ceil(i / s) - 1) * s + (k - 1) * d + 1 - i, 0)`` pixels in total and puts the odd pixel
on the bottom/right. With stride 1 and an odd kernel that is the symmetric padding PyTorch uses, so only strided
convolutions need the dynamic pad of :class:`Conv2dSame`. Weights ported from TensorFlow (the ``tf_*`` models,
DeepMind's NFNets) need it: the symmetric form shifts every strided feature map by one pixel.

A 1×1 convolution with stride s reads only every s-th pixel, so it is computed as the input subsampled
(``x[:, :, ::s, ::s]``) followed by the same convolution at stride 1 (:class:`StridedPointwiseConv2d`): the same
arithmetic on a quarter of the pixels, the same parameters and state dict. It also keeps the training step off the
strided-1×1 weight-gradient kernel of oneDNN 3.12 (PyTorch 2.13), which crashes or hangs with AVX2-only kernels on
few input channels in channels_last (RepVGG's stem, DeepMind's NF-ResNet shortcut).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Conv2dSame",
    "Padding",
    "StridedPointwiseConv2d",
    "create_conv2d",
    "is_strided_pointwise",
    "pad_same",
    "subsample",
    "symmetric_padding",
]

Padding = Literal["symmetric", "same"]


def symmetric_padding(kernel_size: int, stride: int = 1, dilation: int = 1) -> int:
    """PyTorch-style padding that keeps ``ceil(i / stride)`` outputs for odd kernels."""
    return ((stride - 1) + dilation * (kernel_size - 1)) // 2


def _same_pad_amount(size: int, kernel_size: int, stride: int, dilation: int) -> int:
    # integer arithmetic on non-negative numbers only, so that a symbolic size in torch.export stays one small
    # expression and ONNX's integer Div (which truncates) agrees with floor division
    reach = (kernel_size - 1) * dilation + 1
    total = ((size + stride - 1) // stride - 1) * stride + reach - size  # >= reach - stride: no max when that's >= 0
    return total if reach >= stride else torch.sym_max(total, 0)


def pad_same(x: torch.Tensor, kernel_size: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]):
    """Pad ``x`` (N, C, H, W) as TensorFlow's 'same' does: the extra pixel goes bottom/right."""
    ih, iw = x.shape[-2:]
    pad_h = _same_pad_amount(ih, kernel_size[0], stride[0], dilation[0])
    pad_w = _same_pad_amount(iw, kernel_size[1], stride[1], dilation[1])
    if pad_h or pad_w:
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
    return x


def is_strided_pointwise(kernel_size: int | tuple[int, ...], stride: int | tuple[int, ...]) -> bool:
    """Whether a conv of this geometry is a 1×1 with a stride above 1 (no padding under either rule)."""
    kernel = (kernel_size,) * 2 if isinstance(kernel_size, int) else tuple(kernel_size)
    strides = (stride,) * 2 if isinstance(stride, int) else tuple(stride)
    return kernel == (1, 1) and strides != (1, 1)


def subsample(x: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """The pixels a 1×1 conv of ``stride`` reads: ``x[:, :, ::sh, ::sw]`` (N, C, H, W) -> (N, C, ⌈H/sh⌉, ⌈W/sw⌉)."""
    return x[:, :, :: stride[0], :: stride[1]]


class StridedPointwiseConv2d(nn.Conv2d):
    """A 1×1 conv with stride s as ``conv1×1(x[:, :, ::s, ::s])``: equal to ``nn.Conv2d(..., 1, s)`` (whose
    ``stride`` it keeps, for counting, folding and export), and away from oneDNN's strided-1×1 weight gradient."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not is_strided_pointwise(self.kernel_size, self.stride) or self.padding != (0, 0):
            raise ValueError(f"a strided 1x1 conv without padding expected, got {self.extra_repr()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(subsample(x, self.stride), self.weight, self.bias, 1, 0, self.dilation, self.groups)


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow 'same' padding computed from the input size at every call."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def create_conv2d(
    in_chs: int,
    out_chs: int,
    kernel_size: int,
    stride: int = 1,
    *,
    dilation: int = 1,
    groups: int = 1,
    bias: bool = False,
    padding: Padding = "symmetric",
) -> nn.Conv2d:
    """A conv layer with the given padding rule; ``groups=-1`` means depthwise (``groups = in_chs``)."""
    groups = in_chs if groups == -1 else groups
    if padding not in ("symmetric", "same"):
        raise ValueError(f"padding must be 'symmetric' or 'same', got {padding!r}")
    if is_strided_pointwise(kernel_size, stride):  # no padding under either rule
        return StridedPointwiseConv2d(in_chs, out_chs, 1, stride, dilation=dilation, groups=groups, bias=bias)
    if padding == "same" and (stride > 1 or dilation * (kernel_size - 1) % 2):
        return Conv2dSame(in_chs, out_chs, kernel_size, stride, dilation=dilation, groups=groups, bias=bias)
    pad = symmetric_padding(kernel_size, stride, dilation)
    return nn.Conv2d(in_chs, out_chs, kernel_size, stride, pad, dilation=dilation, groups=groups, bias=bias)

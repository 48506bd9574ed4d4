"""Conv → norm → activation, the unit every ConvNet here is built from."""

from __future__ import annotations

import torch
from torch import nn

from .activations import ActLayer, create_act
from .conv import Padding, create_conv2d
from .norm import NormLayer, get_norm_layer

__all__ = ["ConvNormAct"]


class ConvNormAct(nn.Sequential):
    """``conv`` (no bias when a norm follows) → ``bn`` → ``act``; ``act=None`` leaves the activation out.

    A Sequential, so that a later pass (BN folding, re-parameterization) can swap its parts in place.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        *,
        groups: int = 1,
        dilation: int = 1,
        padding: Padding = "symmetric",
        norm_layer: NormLayer = "batchnorm",
        act_layer: ActLayer = "relu",
    ) -> None:
        norm = get_norm_layer(norm_layer)
        super().__init__()
        self.conv = create_conv2d(
            in_chs, out_chs, kernel_size, stride, dilation=dilation, groups=groups, bias=norm is None, padding=padding
        )
        self.bn = norm(out_chs) if norm is not None else nn.Identity()
        self.act = create_act(act_layer, inplace=True)

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

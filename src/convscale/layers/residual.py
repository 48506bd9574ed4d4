"""Residual-branch helpers shared by the ResNet, ConvNeXt and modernization blocks."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LayerScale"]


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch, initialized small (CaiT; ConvNeXt uses 1e-6).

    ``dim`` is the channel axis: -1 for channels-last tensors, 1 for (N, C, H, W).
    """

    def __init__(self, channels: int, init_value: float = 1e-6, dim: int = -1) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((channels,), float(init_value)))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dim == -1:
            return x * self.gamma
        return x * self.gamma.view(-1, *([1] * (x.ndim - self.dim - 1)))

"""The two-layer MLP of Transformer and ConvNeXt blocks, on channels-last tensors."""

from __future__ import annotations

import torch
from torch import nn

from .activations import ActLayer, create_act

__all__ = ["Mlp"]


class Mlp(nn.Module):
    """``fc1`` → act → ``fc2`` over the last dimension: (..., C_in) -> (..., C_out)."""

    def __init__(
        self, in_features: int, hidden_features: int, out_features: int | None = None, *, act_layer: ActLayer = "gelu"
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = create_act(act_layer)
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

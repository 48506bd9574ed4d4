"""The two-layer MLP of Transformer and ConvNeXt blocks: on channels-last tensors (``Linear``), or with ``conv`` on
(N, C, H, W) tensors as 1×1 convolutions — the same function, the same parameters up to their shape."""

from __future__ import annotations

import torch
from torch import nn

from .activations import ActLayer, create_act

__all__ = ["Mlp"]


class Mlp(nn.Module):
    """``fc1`` → act → ``fc2`` over the last dimension, (..., C_in) -> (..., C_out); with ``conv``, over the channel
    dimension of (N, C, H, W)."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int | None = None,
        *,
        act_layer: ActLayer = "gelu",
        conv: bool = False,
    ) -> None:
        super().__init__()
        fc = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.fc1 = fc(in_features, hidden_features)
        self.act = create_act(act_layer)
        self.fc2 = fc(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

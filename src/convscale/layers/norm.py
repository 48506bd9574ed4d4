"""Normalization factory: a name or an ``nn.Module`` class in, a module class out."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .helpers import resolve_layer

__all__ = ["BN_EPS_TF", "BN_MOMENTUM_TF", "NormLayer", "get_norm_layer"]

NormLayer = str | type[nn.Module] | Callable[..., nn.Module] | None

#: TensorFlow's batch-norm defaults in PyTorch's convention (TF momentum 0.99 is PyTorch momentum 0.01).
BN_EPS_TF = 1e-3
BN_MOMENTUM_TF = 0.01


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) tensor (ConvNeXt's "channels_first" LayerNorm).

    Permutes to (N, H, W, C) and back: with channels_last memory both permutes are free views.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


_NORMS: dict[str, Callable[..., nn.Module]] = {
    "batchnorm": nn.BatchNorm2d,
    "batchnorm2d": nn.BatchNorm2d,
    "batchnorm_tf": partial(nn.BatchNorm2d, eps=BN_EPS_TF, momentum=BN_MOMENTUM_TF),
    "groupnorm1": partial(nn.GroupNorm, 1),
    "layernorm2d": partial(LayerNorm2d, eps=1e-6),
    "identity": lambda *_args, **_kwargs: nn.Identity(),
}


def get_norm_layer(norm: NormLayer) -> Callable[..., nn.Module] | None:
    """Resolve ``norm`` (a name such as ``"batchnorm"``, a class or factory taking the channel count, or None)."""
    return resolve_layer(norm, _NORMS, "norm layer")

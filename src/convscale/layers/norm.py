"""Normalization factory: a name or an ``nn.Module`` class in, a module class out."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

__all__ = ["BN_EPS_TF", "BN_MOMENTUM_TF", "NormLayer", "get_norm_layer"]

NormLayer = str | type[nn.Module] | Callable[..., nn.Module] | None

#: TensorFlow's batch-norm defaults in PyTorch's convention (TF momentum 0.99 is PyTorch momentum 0.01).
BN_EPS_TF = 1e-3
BN_MOMENTUM_TF = 0.01

_NORMS: dict[str, Callable[..., nn.Module]] = {
    "batchnorm": nn.BatchNorm2d,
    "batchnorm2d": nn.BatchNorm2d,
    "batchnorm_tf": partial(nn.BatchNorm2d, eps=BN_EPS_TF, momentum=BN_MOMENTUM_TF),
    "groupnorm1": partial(nn.GroupNorm, 1),
    "identity": lambda *_args, **_kwargs: nn.Identity(),
}


def get_norm_layer(norm: NormLayer) -> Callable[..., nn.Module] | None:
    """Resolve ``norm`` (a name such as ``"batchnorm"``, a class or factory taking the channel count, or None)."""
    if norm is None or callable(norm):
        return norm
    if isinstance(norm, str):
        try:
            return _NORMS[norm.lower()]
        except KeyError:
            raise ValueError(f"unknown norm layer {norm!r}; expected one of {sorted(_NORMS)}") from None
    raise TypeError(f"norm layer must be a name, a module class or None, got {type(norm).__name__}")

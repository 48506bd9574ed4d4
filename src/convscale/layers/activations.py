"""Activation factory: a name or an ``nn.Module`` class in, a module class out."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from .helpers import resolve_layer

__all__ = ["ActLayer", "create_act", "get_act_layer"]

ActLayer = str | type[nn.Module] | Callable[..., nn.Module] | None

_ACTS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "gelu_tanh": partial(nn.GELU, approximate="tanh"),
    "hard_swish": nn.Hardswish,
    "hard_sigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "identity": nn.Identity,
}
_INPLACE = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU, nn.ELU)


def get_act_layer(act: ActLayer) -> Callable[..., nn.Module] | None:
    """Resolve ``act`` (a name such as ``"silu"``, a module class, a factory, or None) to a module factory."""
    return resolve_layer(act, _ACTS, "activation")


def create_act(act: ActLayer, inplace: bool = False) -> nn.Module:
    """An activation module (``nn.Identity`` for None); ``inplace`` is passed where the activation supports it."""
    layer = get_act_layer(act)
    if layer is None:
        return nn.Identity()
    if inplace and isinstance(layer, type) and issubclass(layer, _INPLACE):
        return layer(inplace=True)
    return layer()

"""Load torchvision state dicts into the matching convscale models (torchvision itself is not needed).

Covered: ``shufflenet_v2_x0_5`` … ``x2_0``, ``mobilenet_v2``, ``mobilenet_v3_large`` and ``mobilenet_v3_small``: the
variants whose registry entry has a ``counterparts["torchvision"]`` (written in their family modules, with the
settings torchvision uses, e.g. MobileNetV3's BN eps 1e-3 and momentum 0.01). torchvision's MobileNetV3 hidden head
layer is a Linear where timm has a 1×1 conv (the shapes are reshaped on load).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..factory import create_model
from ..registry import counterpart, counterpart_of, list_models
from ..utils.keymap import expand_keys
from ..weights.files import load_mapped

__all__ = ["from_torchvision", "torchvision_key_map", "torchvision_names"]


def _by_name() -> dict[str, str]:
    """torchvision name -> convscale name."""
    found = ((counterpart(n, "torchvision"), n) for n in list_models(include_tiny=False))
    return {tv.name: name for tv, name in found if tv is not None and tv.name is not None}


def torchvision_names() -> list[str]:
    return list(_by_name())


def torchvision_key_map(model: nn.Module) -> dict[str, str]:
    """For every key of ``model.state_dict()``, torchvision's key for the same tensor."""
    return expand_keys(model, counterpart_of(model, "torchvision").keys, "torchvision")


def from_torchvision(name: str, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """The convscale model matching torchvision's ``name``, loaded with a torchvision ``state_dict``
    (``num_classes`` is read from it)."""
    names = _by_name()
    if name not in names:
        raise ValueError(f"no convscale counterpart for torchvision's {name!r}; expected one of {sorted(names)}")
    arch = names[name]
    overrides = dict(counterpart(arch, "torchvision").form)
    with torch.device("meta"):
        key_map = torchvision_key_map(create_model(arch, **overrides))
    head = key_map["head.fc.weight"]
    if head not in state_dict:
        raise ValueError(f"state dict is not torchvision's {name}: no {head!r}")
    model = create_model(arch, num_classes=state_dict[head].shape[0], **overrides)
    load_mapped(model, state_dict, key_map)
    return model

"""AsymmNet's official PyTorch port (``pytorch/asymmnet.py`` of ``Spark001/AsymmNet``) ↔ convscale: its state dicts
into convscale models. The port's names are the variant's registry entry (``counterparts["asymmnet"]``, written in
``models/asymmnet.py``); this module only reads them."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..factory import create_model
from ..registry import counterpart, get_entry
from ..utils.keymap import expand_keys
from ..weights.files import load_mapped

__all__ = ["from_asymmnet"]


def from_asymmnet(name: str, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """The convscale AsymmNet ``name`` (e.g. ``asymmnet_large_100``) loaded with a state dict of the official PyTorch
    port; ``num_classes`` is read from it. An unknown name or width, or a state dict of another model or width, is a
    ValueError naming the mismatch."""
    entry = get_entry(name)  # unknown names: ValueError with the closest matches
    rule = counterpart(name, "asymmnet")
    if rule is None:
        raise ValueError(f"{name!r} ({entry.family}) is not an AsymmNet: the official port has no such model")
    with torch.device("meta"):  # only for the key map: costs nothing
        probe = create_model(name)
    key_map = expand_keys(probe, rule.keys, "asymmnet")
    head = key_map["head.fc.weight"]
    if head not in state_dict:
        raise ValueError(f"state dict is not the official port's {name}: no {head!r}")
    model = create_model(name, num_classes=state_dict[head].shape[0])
    try:
        load_mapped(model, state_dict, key_map)
    except ValueError as e:
        raise ValueError(f"state dict is not the official port's {name}: {e}") from None
    return model

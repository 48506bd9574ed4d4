"""timm ↔ convscale: timm checkpoints into convscale models.

What timm calls each variant, how its tensors are named and under which settings ours computes exactly what timm's
does are the variant's registry entry (``counterparts["timm"]``, written in its family module); this module only
reads them.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..factory import create_model
from ..registry import counterpart, counterpart_of, get_entry, list_models
from ..utils.keymap import expand_keys
from ..weights.files import load_mapped

__all__ = ["from_timm", "is_timm_form", "timm_form", "timm_key_map", "timm_names"]


def timm_form(name: str) -> dict[str, object]:
    """The ``create_model`` overrides that give timm's form of model ``name`` (empty where ours is timm's)."""
    timm = counterpart(name, "timm")
    return dict(timm.form) if timm is not None else {}


def is_timm_form(model: nn.Module, name: str) -> bool:
    """Whether ``model`` (built as ``name``) computes what timm's model of that name does, so timm's weights fit."""
    timm = counterpart(name, "timm")
    return timm is None or timm.fits(model)


def timm_key_map(model: nn.Module) -> dict[str, str]:
    """For every key of ``model.state_dict()``, the key timm uses for the same tensor."""
    return expand_keys(model, counterpart_of(model, "timm").keys, "timm")


def timm_names() -> list[str]:
    """timm model names that have a registered convscale counterpart."""
    names = (counterpart(n, "timm") for n in list_models(include_tiny=False))
    return [c.name for c in names if c is not None and c.name is not None]


def from_timm(timm_name: str, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """The convscale model matching ``timm_name`` (a pretrained tag such as ``.ra_in1k`` is ignored), loaded with a
    timm-format ``state_dict``. ``num_classes`` and ``in_chans`` are read from the state dict.
    """
    arch = timm_name.split(".", 1)[0]
    if arch not in timm_names():
        entry = get_entry(arch)  # unknown names: ValueError with the closest matches
        raise ValueError(f"{arch!r} ({entry.family}) has no timm counterpart")
    with torch.device("meta"):  # only for the key map: costs nothing
        probe = create_model(arch)
    key_map = timm_key_map(probe)
    first_conv = next(k for k, v in probe.state_dict().items() if v.ndim == 4)  # the stem's: gives in_chans
    head, stem = key_map["head.fc.weight"], key_map[first_conv]
    if head not in state_dict or stem not in state_dict:
        raise ValueError(f"state dict is not a timm {arch}: no {head if head not in state_dict else stem!r}")
    model = create_model(
        arch, num_classes=state_dict[head].shape[0], in_chans=state_dict[stem].shape[1], **timm_form(arch)
    )
    load_mapped(model, state_dict, key_map)
    return model

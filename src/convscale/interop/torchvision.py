"""Load torchvision state dicts into the matching convscale models (torchvision itself is not needed).

Covered: ``shufflenet_v2_x0_5`` … ``x2_0``, ``mobilenet_v2``, ``mobilenet_v3_large`` and ``mobilenet_v3_small``.
torchvision's MobileNetV3 uses BN eps 1e-3 and momentum 0.01 (timm's: 1e-5, 0.1), so its models are built with
those; its hidden head layer is a Linear where timm has a 1×1 conv (the shapes are reshaped on load).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from ..checkpoint import load_mapped
from ..factory import create_model
from ..layers import MBConv
from ..models.efficientnet import EfficientNet
from ..models.shufflenet import ShuffleNetV2

__all__ = ["from_torchvision", "torchvision_key_map", "torchvision_names"]

Pairs = Iterator[tuple[str, str]]

#: torchvision name: (convscale name, create_model overrides)
_NAMES: dict[str, tuple[str, dict[str, object]]] = {
    **{f"shufflenet_v2_{m}": (f"shufflenet_v2_{m}", {}) for m in ("x0_5", "x1_0", "x1_5", "x2_0")},
    "mobilenet_v2": ("mobilenetv2_100", {}),
    "mobilenet_v3_large": ("mobilenetv3_large_100", {"bn_eps": 1e-3, "bn_momentum": 0.01}),
    "mobilenet_v3_small": ("mobilenetv3_small_100", {"bn_eps": 1e-3, "bn_momentum": 0.01}),
}


def torchvision_names() -> list[str]:
    return list(_NAMES)


def _cna(ours: str, theirs: str, conv: int = 0) -> Pairs:
    """A ConvNormAct and torchvision's Sequential(conv, bn, …) (or its conv and bn at indices conv, conv + 1)."""
    yield f"{ours}.conv", f"{theirs}.{conv}"
    yield f"{ours}.bn", f"{theirs}.{conv + 1}"


def _shufflenet(model: ShuffleNetV2) -> Pairs:
    yield from _cna("stem", "conv1")
    for i, stage in enumerate(model.stages):
        for j, unit in enumerate(stage):
            ours, theirs = f"stages.{i}.{j}", f"stage{i + 2}.{j}"
            if unit.branch1 is not None:
                yield from _cna(f"{ours}.branch1.0", f"{theirs}.branch1")
                yield from _cna(f"{ours}.branch1.1", f"{theirs}.branch1", 2)
            for k in range(3):  # 1×1 + ReLU, dw, 1×1 + ReLU: conv/bn at 0/1, 3/4, 5/6
                yield from _cna(f"{ours}.branch2.{k}", f"{theirs}.branch2", (0, 3, 5)[k])
    yield from _cna("final", "conv5")
    yield "head.fc", "fc"


def _mobilenet(model: EfficientNet) -> Pairs:
    v3 = bool(model.cfg.head_hidden)
    yield from _cna("stem", "features.0")
    blocks = [(f"stages.{i}.{j}", b) for i, stage in enumerate(model.stages) for j, b in enumerate(stage)]
    for k, (ours, block) in enumerate(blocks, start=1):
        assert isinstance(block, MBConv)
        theirs = f"features.{k}.block" if v3 else f"features.{k}.conv"
        parts = [p for p in ("expand", "dw", "se", "project") if not isinstance(getattr(block, p), nn.Identity)]
        for index, part in enumerate(parts):
            if part == "se":
                yield f"{ours}.se.reduce", f"{theirs}.{index}.fc1"
                yield f"{ours}.se.expand", f"{theirs}.{index}.fc2"
            elif part == "project" and not v3:  # MobileNetV2: the projection's conv and bn sit in the block itself
                yield from _cna(f"{ours}.project", theirs, index)
            else:
                yield from _cna(f"{ours}.{part}", f"{theirs}.{index}")
    yield from _cna("final", f"features.{len(blocks) + 1}")
    if v3:
        yield from (("head.hidden", "classifier.0"), ("head.fc", "classifier.3"))
    else:
        yield "head.fc", "classifier.1"


def torchvision_key_map(model: nn.Module) -> dict[str, str]:
    """For every key of ``model.state_dict()``, torchvision's key for the same tensor."""
    if isinstance(model, ShuffleNetV2):
        modules = dict(_shufflenet(model))
    elif isinstance(model, EfficientNet) and all(isinstance(b, MBConv) for s in model.stages for b in s):
        modules = dict(_mobilenet(model))
    else:
        raise ValueError(f"no torchvision key mapping for {type(model).__name__}")
    out = {}
    for key in model.state_dict():
        owner, _, leaf = key.rpartition(".")
        if owner not in modules:
            raise ValueError(f"no torchvision name for {key!r} in {type(model).__name__}")
        out[key] = f"{modules[owner]}.{leaf}"
    return out


def from_torchvision(name: str, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """The convscale model matching torchvision's ``name``, loaded with a torchvision ``state_dict``
    (``num_classes`` is read from it)."""
    if name not in _NAMES:
        raise ValueError(f"no convscale counterpart for torchvision's {name!r}; expected one of {sorted(_NAMES)}")
    arch, overrides = _NAMES[name]
    with torch.device("meta"):
        key_map = torchvision_key_map(create_model(arch, **overrides))
    head = key_map["head.fc.weight"]
    if head not in state_dict:
        raise ValueError(f"state dict is not torchvision's {name}: no {head!r}")
    model = create_model(arch, num_classes=state_dict[head].shape[0], **overrides)
    load_mapped(model, state_dict, key_map)
    return model

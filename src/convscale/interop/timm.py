"""timm ↔ convscale: key maps per module kind, so timm checkpoints load into convscale models.

Each model or block class has a rule that lists ``(convscale module path, timm module path)`` pairs for the modules
that own tensors; :func:`timm_key_map` walks a model with them and expands the pairs to tensor keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn

from ..checkpoint import load_mapped
from ..factory import create_model
from ..layers import FusedMBConv, MBConv
from ..models.convnext import ConvNeXt
from ..models.efficientnet import EfficientNet
from ..models.ghostnet import GhostNet
from ..models.nfnet import NormFreeNet
from ..models.repvgg import RepVGG
from ..models.resnet import ResNet
from ..registry import get_entry, list_models

__all__ = ["from_timm", "timm_key_map", "timm_names"]

Pairs = Iterator[tuple[str, str]]
_SE = (("se.reduce", "se.conv_reduce"), ("se.expand", "se.conv_expand"))


def _mbconv(block: MBConv) -> Pairs:
    if isinstance(block.expand, nn.Identity):  # timm's DepthwiseSeparableConv
        yield from (("dw.conv", "conv_dw"), ("dw.bn", "bn1"), *_SE, ("project.conv", "conv_pw"), ("project.bn", "bn2"))
    else:  # timm's InvertedResidual
        yield from (
            ("expand.conv", "conv_pw"),
            ("expand.bn", "bn1"),
            ("dw.conv", "conv_dw"),
            ("dw.bn", "bn2"),
            *_SE,
            ("project.conv", "conv_pwl"),
            ("project.bn", "bn3"),
        )


def _fused(block: FusedMBConv) -> Pairs:
    if isinstance(block.project, nn.Identity):  # timm's ConvBnAct
        yield from (("fused.conv", "conv"), ("fused.bn", "bn1"))
    else:  # timm's EdgeResidual
        yield from (
            ("fused.conv", "conv_exp"),
            ("fused.bn", "bn1"),
            *_SE,
            ("project.conv", "conv_pwl"),
            ("project.bn", "bn2"),
        )


def _nested(prefix: str, theirs: str, module: nn.Module) -> Pairs:
    for ours_rel, theirs_rel in _rule(module)(module):
        yield f"{prefix}.{ours_rel}", f"{theirs}.{theirs_rel}"


def _efficientnet(model: EfficientNet) -> Pairs:
    yield from (("stem.conv", "conv_stem"), ("stem.bn", "bn1"))
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage):
            yield from _nested(f"stages.{i}.{j}", f"blocks.{i}.{j}", block)
    if model.cfg.head_hidden:  # timm's MobileNetV3: the last 1×1 conv is a block, the hidden layer its conv_head
        last = f"blocks.{len(model.stages)}.0"
        yield from (("final.conv", f"{last}.conv"), ("final.bn", f"{last}.bn1"), ("head.hidden", "conv_head"))
    else:
        yield from (("final.conv", "conv_head"), ("final.bn", "bn2"))
    yield "head.fc", "classifier"


def _tensor_owners(model: nn.Module) -> Iterator[str]:
    for name, module in model.named_modules():
        if (
            next(module.parameters(recurse=False), None) is not None
            or next(module.buffers(recurse=False), None) is not None
        ):
            yield name


def _convnext(model: ConvNeXt) -> Pairs:
    """timm's names are ours, but for layer scale: timm keeps ``gamma`` on the block itself."""
    for name in _tensor_owners(model):
        yield name, name.removesuffix(".ls")


_RESNET = [  # (our module name, timm's), applied in order
    (r"^stem\.conv$", "conv1"),
    (r"^stem\.bn$", "bn1"),
    (r"^stages\.(\d+)\.(\d+)\.branch\.(\d+)\.conv$", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.conv{int(m[3]) + 1}"),
    (r"^stages\.(\d+)\.(\d+)\.branch\.(\d+)\.bn$", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.bn{int(m[3]) + 1}"),
    (r"^stages\.(\d+)\.(\d+)\.shortcut\.conv$", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.0"),
    (r"^stages\.(\d+)\.(\d+)\.shortcut\.bn$", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.1"),
    (r"^head\.fc$", "fc"),
]


def _resnet(model: ResNet) -> Pairs:
    for name in _tensor_owners(model):
        for pattern, theirs in _RESNET:
            if re.match(pattern, name):
                yield name, re.sub(pattern, theirs, name)
                break
        else:
            raise ValueError(f"no timm name for {name!r}: this ResNet variant has no timm counterpart")


def _nfnet(model: NormFreeNet) -> Pairs:
    """timm's names are ours, but for the SE (``attn_last.fc1/fc2``), the final conv and a single-conv stem."""
    for name in _tensor_owners(model):
        theirs = re.sub(r"\.se\.reduce$", ".attn_last.fc1", name)
        theirs = re.sub(r"\.se\.expand$", ".attn_last.fc2", theirs)
        theirs = {"final.conv": "final_conv", "stem": "stem.conv"}.get(theirs, theirs)
        yield name, theirs


def _same_names(model: nn.Module) -> Pairs:
    """timm's names are ours (RepVGG: timm's ByobNet layout)."""
    for name in _tensor_owners(model):
        yield name, name


def _ghost_module(prefix: str, theirs: str) -> Pairs:
    for part, their_part in (("primary", "primary_conv"), ("cheap", "cheap_operation")):
        yield f"{prefix}.{part}.conv", f"{theirs}.{their_part}.0"
        yield f"{prefix}.{part}.bn", f"{theirs}.{their_part}.1"


def _ghostnet(model: GhostNet) -> Pairs:
    yield from (("stem.conv", "conv_stem"), ("stem.bn", "bn1"))
    for i, stage in enumerate(model.stages):
        for j in range(len(stage)):
            ours, theirs = f"stages.{i}.{j}", f"blocks.{i}.{j}"
            yield from _ghost_module(f"{ours}.ghost1", f"{theirs}.ghost1")
            yield from _ghost_module(f"{ours}.ghost2", f"{theirs}.ghost2")
            yield from ((f"{ours}.dw.conv", f"{theirs}.conv_dw"), (f"{ours}.dw.bn", f"{theirs}.bn_dw"))
            yield from ((f"{ours}.{a}", f"{theirs}.{b}") for a, b in _SE)
            for k in range(2):  # shortcut: (dw conv, bn), (1×1 conv, bn) -> shortcut.0 … 3
                yield f"{ours}.shortcut.{k}.conv", f"{theirs}.shortcut.{2 * k}"
                yield f"{ours}.shortcut.{k}.bn", f"{theirs}.shortcut.{2 * k + 1}"
    last = f"blocks.{len(model.stages)}.0"
    yield from (("final.conv", f"{last}.conv"), ("final.bn", f"{last}.bn1"))
    yield from (("head.hidden", "conv_head"), ("head.fc", "classifier"))


_RULES: dict[type[nn.Module], Callable[..., Pairs]] = {
    MBConv: _mbconv,
    FusedMBConv: _fused,
    EfficientNet: _efficientnet,
    ConvNeXt: _convnext,
    ResNet: _resnet,
    NormFreeNet: _nfnet,
    RepVGG: _same_names,
    GhostNet: _ghostnet,
}
#: families whose registered (non-test) names are timm names with the same architecture, and the exceptions
_FAMILIES = (
    "efficientnet",
    "efficientnetv2",
    "mobilenetv2",
    "mobilenetv3",
    "convnext",
    "resnet",
    "nfnet",
    "nf_resnet",
    "repvgg",
    "ghostnet",
)
_NOT_IN_TIMM = frozenset(
    {"efficientnetv2_b0", "efficientnetv2_b1", "efficientnetv2_b2", "efficientnetv2_b3"}
    | {"repvgg_b1g2", "repvgg_b2g2", "repvgg_b3g2"}
)
#: config fields where timm's model of the same name computes another function with the same parameters: its
#: nf_resnet50 folds the ReLU's γ into every conv, the stem's too, and average-pools before its transition shortcuts
#: (ours follows the NF-ResNet paper, whose variance matches the α/β bookkeeping)
_TIMM_FORM: dict[str, dict[str, object]] = {"nf_resnet": {"gamma_in_act": False, "pool_shortcut": True}}


def timm_form(name: str) -> dict[str, object]:
    """The ``create_model`` overrides that give timm's form of model ``name`` (empty where ours is timm's), by
    family."""
    return dict(_TIMM_FORM.get(get_entry(name).family, {}))


def is_timm_form(model: nn.Module, name: str) -> bool:
    """Whether ``model`` (built as ``name``) computes what timm's model of that name does, so timm's weights fit."""
    cfg = getattr(model, "cfg", None)
    return all(getattr(cfg, field, None) == value for field, value in timm_form(name).items())


def _rule(module: nn.Module) -> Callable[..., Pairs]:
    for cls in type(module).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    raise ValueError(f"no timm key mapping for {type(module).__name__}")


def timm_key_map(model: nn.Module) -> dict[str, str]:
    """For every key of ``model.state_dict()``, the key timm uses for the same tensor."""
    modules = dict(_rule(model)(model))
    out = {}
    for key in model.state_dict():
        owner, _, leaf = key.rpartition(".")
        if owner not in modules:
            raise ValueError(f"no timm name for {key!r} in {type(model).__name__}")
        out[key] = f"{modules[owner]}.{leaf}".lstrip(".")
    return out


def timm_names() -> list[str]:
    """timm model names that have a registered convscale counterpart."""
    return [n for f in _FAMILIES for n in list_models(family=f, include_tiny=False) if n not in _NOT_IN_TIMM]


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

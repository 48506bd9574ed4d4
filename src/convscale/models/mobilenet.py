"""MobileNetV2 (Sandler et al., 2018) and MobileNetV3 (Howard et al., 2019) as members of the MBConv family.

Their blocks are the EfficientNet family's ``MBConv`` with other settings, so they are EfficientNet stage tables:
MobileNetV2 uses ReLU6 and no SE; MobileNetV3 mixes ReLU and hard-swish rows, takes its SE (hard-sigmoid gate, ReLU)
from the expanded channels rounded to 8, ends with a 1×1 conv to 960 / 576 and, after pooling, a hidden linear layer
of 1280 / 1024 with hard-swish. Tables as in timm's ``_gen_mobilenet_v2`` / ``_gen_mobilenet_v3`` (which follow the
TF-slim reference) and torchvision's ``mobilenet_v3_large/small`` configs.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from ..config import Published
from ..layers import MBConv, SEConfig
from ..registry import register_model
from ..utils.keymap import Counterpart, Pairs, conv_norm_keys
from .efficientnet import EfficientNet, EfficientNetConfig, MBStage, timm_keys

__all__ = ["MOBILENET_V2", "MOBILENET_V3_LARGE", "MOBILENET_V3_SMALL"]

M, RE = "mbconv", "relu"

MOBILENET_V2 = (  # paper Table 2: (t, c, n, s); the first row has no expansion
    MBStage(M, 1, 3, 1, 1, 16),
    MBStage(M, 2, 3, 2, 6, 24),
    MBStage(M, 3, 3, 2, 6, 32),
    MBStage(M, 4, 3, 2, 6, 64),
    MBStage(M, 3, 3, 1, 6, 96),
    MBStage(M, 3, 3, 2, 6, 160),
    MBStage(M, 1, 3, 1, 6, 320),
)
#: paper Table 1; expansions are the expanded widths over the input widths (e.g. 184 / 80 = 2.3)
MOBILENET_V3_LARGE = (
    MBStage(M, 1, 3, 1, 1, 16, act=RE),
    MBStage(M, 1, 3, 2, 4, 24, act=RE),
    MBStage(M, 1, 3, 1, 3, 24, act=RE, continues=True),
    MBStage(M, 3, 5, 2, 3, 40, 0.25, act=RE),
    MBStage(M, 1, 3, 2, 6, 80),
    MBStage(M, 1, 3, 1, 2.5, 80, continues=True),
    MBStage(M, 2, 3, 1, 2.3, 80, continues=True),
    MBStage(M, 2, 3, 1, 6, 112, 0.25),
    MBStage(M, 3, 5, 2, 6, 160, 0.25),
)
#: paper Table 2
MOBILENET_V3_SMALL = (
    MBStage(M, 1, 3, 2, 1, 16, 0.25, act=RE),
    MBStage(M, 1, 3, 2, 4.5, 24, act=RE),
    MBStage(M, 1, 3, 1, 3.67, 24, act=RE, continues=True),
    MBStage(M, 1, 5, 2, 4, 40, 0.25),
    MBStage(M, 2, 5, 1, 6, 40, 0.25, continues=True),
    MBStage(M, 2, 5, 1, 3, 48, 0.25),
    MBStage(M, 3, 5, 2, 6, 96, 0.25),
)
#: MobileNetV3's SE: ratio of the expanded width, rounded to 8, ReLU inside, hard-sigmoid gate
V3_SE = SEConfig(from_expanded=True, divisor=8, act_layer="relu", gate_layer="hard_sigmoid")

_V3_NOTE = "TF-slim mobilenet README (official checkpoints); paper Table 3"
_COMMON = dict(train_res=224, test_res=224, drop_rate=0.2, drop_path_rate=0.0)

_V2 = EfficientNetConfig(
    stages=MOBILENET_V2,
    act_layer="relu6",
    published=Published(72.0, 3.4, 0.300, "paper Table 4"),
    **_COMMON,
)
_V3_LARGE = EfficientNetConfig(
    stages=MOBILENET_V3_LARGE,
    stem_chs=16,
    head_chs=960,
    head_hidden=1280,
    act_layer="hard_swish",
    se=V3_SE,
    published=Published(75.2, 5.4, 0.217, _V3_NOTE),
    **_COMMON,
)
_V3_SMALL = dataclasses.replace(
    _V3_LARGE,
    stages=MOBILENET_V3_SMALL,
    head_chs=576,
    head_hidden=1024,
    published=Published(67.5, 2.9, 0.066, _V3_NOTE + " (the paper's 67.4 / 2.5M / 56M is unverified)"),
)


def torchvision_keys(model: EfficientNet) -> Pairs:
    """torchvision's ``mobilenet_v2`` / ``mobilenet_v3_*`` names (``features.k``, ``classifier``)."""
    v3 = bool(model.cfg.head_hidden)
    blocks = [(f"stages.{i}.{j}", b) for i, stage in enumerate(model.stages) for j, b in enumerate(stage)]
    if not all(isinstance(b, MBConv) for _, b in blocks):
        raise ValueError("no torchvision key mapping for an EfficientNet with Fused-MBConv blocks")
    yield from conv_norm_keys("stem", "features.0")
    for k, (ours, block) in enumerate(blocks, start=1):
        theirs = f"features.{k}.block" if v3 else f"features.{k}.conv"
        parts = [p for p in ("expand", "dw", "se", "project") if not isinstance(getattr(block, p), nn.Identity)]
        for index, part in enumerate(parts):
            if part == "se":
                yield f"{ours}.se.reduce", f"{theirs}.{index}.fc1"
                yield f"{ours}.se.expand", f"{theirs}.{index}.fc2"
            elif part == "project" and not v3:  # MobileNetV2: the projection's conv and bn sit in the block itself
                yield from conv_norm_keys(f"{ours}.project", theirs, index)
            else:
                yield from conv_norm_keys(f"{ours}.{part}", f"{theirs}.{index}")
    yield from conv_norm_keys("final", f"features.{len(blocks) + 1}")
    if v3:
        yield from (("head.hidden", "classifier.0"), ("head.fc", "classifier.3"))
    else:
        yield "head.fc", "classifier.1"


#: torchvision's MobileNetV3 uses BN eps 1e-3 and momentum 0.01 (timm's: 1e-5, 0.1)
_TV_V3 = {"bn_eps": 1e-3, "bn_momentum": 0.01}
for _name, _family, _cfg, _tv in (
    ("mobilenetv2_100", "mobilenetv2", _V2, Counterpart("mobilenet_v2", torchvision_keys)),
    ("mobilenetv3_large_100", "mobilenetv3", _V3_LARGE, Counterpart("mobilenet_v3_large", torchvision_keys, _TV_V3)),
    ("mobilenetv3_small_100", "mobilenetv3", _V3_SMALL, Counterpart("mobilenet_v3_small", torchvision_keys, _TV_V3)),
):
    register_model(
        _name, _family, _cfg, EfficientNet, counterparts={"timm": Counterpart(_name, timm_keys), "torchvision": _tv}
    )

#: tiny: ReLU and hard-swish rows, a continuing row, SE from the expanded width, the hidden head
_TEST_V3 = (
    MBStage(M, 1, 3, 2, 1, 8, 0.25, act=RE),
    MBStage(M, 1, 3, 2, 4, 12, act=RE),
    MBStage(M, 1, 3, 1, 3, 12, act=RE, continues=True),
    MBStage(M, 2, 5, 2, 3, 16, 0.25),
    MBStage(M, 1, 3, 2, 6, 24, 0.25),
)
register_model(
    "test_mobilenetv3",
    "mobilenetv3",
    dataclasses.replace(
        _V3_LARGE, stages=_TEST_V3, stem_chs=8, head_chs=48, head_hidden=64, published=None, train_res=64, test_res=64
    ),
    EfficientNet,
    tiny=True,
    counterparts={"timm": Counterpart(None, timm_keys), "torchvision": Counterpart(None, torchvision_keys)},
)

"""AsymmNet (Yang et al., "AsymmNet: Towards ultralight convolution neural networks using asymmetrical bottlenecks",
CVPR 2021 Mobile AI workshop): MobileNetV3's network with the asymmetrical bottleneck, exact to the official PyTorch
port (``pytorch/asymmnet.py`` of ``Spark001/AsymmNet``).

The block is ``MBConv`` with feature reuse (``reuse=1``): the first 1×1 conv computes ``exp − in`` channels and the
depthwise conv sees ``[x, pw(x), x]`` (``exp + in`` channels), so the budget the cheaper expansion saves goes to the
depthwise conv and the projection; a block expands only when ``exp > in``. Its SE takes a quarter of that
concatenated width rounded *up* to 8, with ReLU and a hard-sigmoid gate. The stage tables are the repository's
MobileNetV3 tables with absolute expanded widths; every width (stem, expansions, outputs, the 960 / 576 head conv) is
``ceil(x·k / 8)·8`` — a ceiling with no minimum, not MobileNetV3's rounding — and the 1×1 conv to 1280 after pooling
(no bias, no BN, hard-swish) is not scaled by the width.

Widths ≤ 0.5: these follow the PyTorch port, which scales the first block's input with the stem (×0.5: an 8-channel
stem into an 8-channel first block, whose residual is kept). The MXNet code the published checkpoint was trained with
does not scale that input (its first block is built for 16 inputs behind an 8-channel stem, residual off), so its ×0.5
and ×0.35 networks differ from these in the first block.

Parameter counts: the published 5.99M (L ×1.0; S ×1.0 3.1M, L ×0.5 2.8M) counts each k×k kernel as k weights instead
of k² — the depthwise kernels and the stem's (the counting tool behind the repository's ``macc.txt``: 5,991,776); the
true count, which ``convscale info`` shows beside the published one, is 6,076,608.
"""

from __future__ import annotations

import dataclasses

from ..config import Published, Recipe
from ..layers import SEConfig
from ..registry import register_model
from ..utils.keymap import Counterpart, Pairs, conv_norm_keys
from .efficientnet import EfficientNet, EfficientNetConfig, MBStage

__all__ = ["ASYMMNET_LARGE", "ASYMMNET_SMALL", "WIDTHS", "asymmnet_keys"]

M, RE, HS = "mbconv", "relu", "hard_swish"


def _row(kernel: int, exp: int, out: int, se: bool, act: str, stride: int, repeats: int = 1, *, cont: bool = True):
    """A row of the official table (kernel, exp, out, SE, act, stride); the expanded width is absolute."""
    return MBStage(M, repeats, kernel, stride, 1.0, out, 0.25 if se else 0.0, act, cont, mid_chs=exp)


#: ``get_asymmnet_cfgs`` "large": (kernel, exp, out, SE, act, stride); a new stage starts at each stride
ASYMMNET_LARGE = (
    _row(3, 16, 16, False, RE, 1, cont=False),
    _row(3, 64, 24, False, RE, 2, cont=False),
    _row(3, 72, 24, False, RE, 1),
    _row(5, 72, 40, True, RE, 2, cont=False),
    _row(5, 120, 40, True, RE, 1, 2),
    _row(3, 240, 80, False, HS, 2, cont=False),
    _row(3, 200, 80, False, HS, 1),
    _row(3, 184, 80, False, HS, 1, 2),
    _row(3, 480, 112, True, HS, 1),
    _row(3, 672, 112, True, HS, 1),
    _row(5, 672, 160, True, HS, 2, cont=False),
    _row(5, 960, 160, True, HS, 1, 2),
)
#: ``get_asymmnet_cfgs`` "small"
ASYMMNET_SMALL = (
    _row(3, 16, 16, True, RE, 2, cont=False),
    _row(3, 72, 24, False, RE, 2, cont=False),
    _row(3, 88, 24, False, RE, 1),
    _row(5, 96, 40, True, HS, 2, cont=False),
    _row(5, 240, 40, True, HS, 1, 2),
    _row(5, 120, 48, True, HS, 1),
    _row(5, 144, 48, True, HS, 1),
    _row(5, 288, 96, True, HS, 2, cont=False),
    _row(5, 576, 96, True, HS, 1, 2),
)
#: the SE of the asymmetrical bottleneck: int(C / 4) of the concatenated width, rounded up to 8; ReLU, hard-sigmoid
ASYMM_SE = SEConfig(from_expanded=True, divisor=8, act_layer="relu", gate_layer="hard_sigmoid", ceil=True)
WIDTHS = {"100": 1.0, "075": 0.75, "050": 0.5, "035": 0.35}

#: ``train.py`` / ``utils/args_helper.py`` / ``checkpoints/log.txt``: NAG 0.9, lr 2.6 at 2048 (256 × 8), 5 warm-up
#: epochs then cosine, 360 epochs, weight decay 3e-5 (not on BN and biases), label smoothing 0.1, no mixup
ASYMMNET_RECIPE = Recipe(
    optimizer="sgd",
    lr=2.6,
    batch_size=2048,
    weight_decay=3e-5,
    epochs=360,
    warmup_epochs=5,
    schedule="cosine",
    label_smoothing=0.1,
    source="Spark001/AsymmNet train.py, utils/args_helper.py, checkpoints/log.txt",
)
_NOTE = "paper / official repo; its params count a k×k kernel as k weights (the true count is the one above)"
#: (top-1, params as published (M), GMACs) where the paper or the repository gives them
_PUBLISHED = {
    ("large", "100"): Published(75.4, 5.99, 0.2169, _NOTE),
    ("large", "050"): Published(69.2, None, 0.0672, _NOTE),
    ("small", "100"): Published(68.4, 3.1, 0.0577, _NOTE),
}
_LARGE = EfficientNetConfig(
    stages=ASYMMNET_LARGE,
    stem_chs=16,
    head_chs=960,
    head_hidden=1280,
    head_hidden_bias=False,
    act_layer=HS,
    se=ASYMM_SE,
    ceil_channels=True,
    reuse=1,
    train_res=224,
    test_res=224,
    drop_rate=0.2,
    drop_path_rate=0.0,
)
_SMALL = dataclasses.replace(_LARGE, stages=ASYMMNET_SMALL, head_chs=576)


def asymmnet_keys(model: EfficientNet) -> Pairs:
    """The official PyTorch port's names: ``first_block``, ``asymm_block.k`` (``expand``, ``dw_conv``, ``se.out``,
    ``pw_conv_linear``), ``last_block`` (its 1×1 conv and BN at 0 and 1, the conv to 1280 at 4), ``output``."""
    yield from conv_norm_keys("stem", "first_block", 0)
    blocks = [(f"stages.{i}.{j}", b) for i, stage in enumerate(model.stages) for j, b in enumerate(stage)]
    for k, (ours, _) in enumerate(blocks):
        theirs = f"asymm_block.{k}"
        for part, name in (("expand", "expand"), ("dw", "dw_conv"), ("project", "pw_conv_linear")):
            yield f"{ours}.{part}.conv", f"{theirs}.{name}.conv"
            yield f"{ours}.{part}.bn", f"{theirs}.{name}.bn"
        yield f"{ours}.se.reduce", f"{theirs}.se.out.0"
        yield f"{ours}.se.expand", f"{theirs}.se.out.2"
    yield from conv_norm_keys("final", "last_block", 0)
    yield from (("head.hidden", "last_block.4"), ("head.fc", "output"))


for _size, _cfg in (("large", _LARGE), ("small", _SMALL)):
    for _suffix, _k in WIDTHS.items():
        _name = f"asymmnet_{_size}_{_suffix}"
        register_model(
            _name,
            "asymmnet",
            dataclasses.replace(
                _cfg,
                width_mult=_k,
                published=_PUBLISHED.get((_size, _suffix)),
                recipe=ASYMMNET_RECIPE,
            ),
            EfficientNet,
            counterparts={"asymmnet": Counterpart(_name, asymmnet_keys)},
        )

#: tiny: a non-expanding first block with SE and a residual, reused rows with and without SE, both activations
_TEST = (
    _row(3, 8, 8, True, RE, 2, cont=False),
    _row(3, 32, 12, False, RE, 2, cont=False),
    _row(3, 36, 12, False, RE, 1),
    _row(5, 48, 16, True, HS, 2, cont=False),
    _row(5, 64, 24, True, HS, 2, cont=False),
)
register_model(
    "test_asymmnet",
    "asymmnet",
    dataclasses.replace(_SMALL, stages=_TEST, stem_chs=8, head_chs=48, head_hidden=64, train_res=64, test_res=64),
    EfficientNet,
    tiny=True,
    counterparts={"asymmnet": Counterpart(None, asymmnet_keys)},
)

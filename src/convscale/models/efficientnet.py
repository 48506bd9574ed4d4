"""EfficientNet V1 (Tan & Le, 2019) and EfficientNetV2 (Tan & Le, 2021): stage tables and one network class.

A variant is data: a base stage table, width/depth multipliers and its resolutions. B1–B7 are B0's table scaled by
the released compound coefficients (TPU code ``efficientnet_params``); EfficientNetV2 starts with Fused-MBConv
stages without SE and continues with MBConv stages with SE (AutoML ``effnetv2_configs``). ``tf_*`` variants use
TensorFlow's 'same' padding and BN eps 1e-3, so that weights ported from TensorFlow reproduce.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Literal

from torch import nn

from ..config import ModelConfig, Published, Recipe
from ..layers import ConvNormAct, FusedMBConv, MBConv, SEConfig
from ..layers.conv import Padding
from ..layers.helpers import ceil_divisible
from ..registry import register_model
from ..scaling import round_filters, round_repeats
from ..utils.keymap import TIMM_SE_KEYS, Counterpart, Pairs
from .base import ClassifierHead, ConvNet, stage_feature_info

__all__ = ["EfficientNet", "EfficientNetConfig", "MBStage", "make_block", "make_head", "make_stem"]

BlockKind = Literal["mbconv", "fused"]
_BLOCKS: dict[str, type[nn.Module]] = {"mbconv": MBConv, "fused": FusedMBConv}


@dataclass(frozen=True)
class MBStage:
    """One row of a stage table: ``repeats`` blocks of one kind; the first block carries the stride."""

    block: BlockKind
    repeats: int
    kernel: int
    stride: int
    expand: float
    out_chs: int
    se_ratio: float = 0.0  # of the block's input channels (EfficientNet), of the expanded ones (MobileNetV3)
    act: str | None = None  # None: the network's activation (MobileNetV3 starts with ReLU rows, then hard-swish)
    continues: bool = False  # the row joins the previous row's stage (MobileNetV3 stages mix settings)
    mid_chs: int = 0  # the expanded width itself, scaled like the others (AsymmNet's tables); 0: from ``expand``

    def __post_init__(self) -> None:
        if self.block not in _BLOCKS:
            raise ValueError(f"block must be one of {sorted(_BLOCKS)}, got {self.block!r}")
        if self.repeats < 1 or self.kernel < 1 or self.stride not in (1, 2) or self.out_chs < 1 or self.expand <= 0:
            raise ValueError(f"invalid stage {self}")


#: EfficientNet's SE: ratio of the block's input width, the block's activation inside, sigmoid gate
EFFICIENTNET_SE = SEConfig()


@dataclass(frozen=True, kw_only=True)
class EfficientNetConfig(ModelConfig):
    """A member of the MBConv family: base stages, compound multipliers, and the layer conventions."""

    stages: tuple[MBStage, ...]
    stem_chs: int = 32
    head_chs: int = 1280
    width_mult: float = 1.0
    depth_mult: float = 1.0
    round_limit: float = 0.9  # V1 rounds channels up when rounding lost >10%; the V2 code does not (0.0)
    act_layer: str = "silu"
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    padding: Padding = "symmetric"
    se: SEConfig = EFFICIENTNET_SE  # how SE is built; the ratio comes from each row
    head_hidden: int = 0  # MobileNetV3: a linear layer of this width (with the activation) after pooling
    head_hidden_bias: bool = True  # AsymmNet's is a 1×1 conv without bias
    ceil_channels: bool = False  # AsymmNet rounds every scaled width up to a multiple of 8 (no 0.9 rule, no minimum)
    reuse: int = 0  # AsymmNet's feature reuse in the expansion (its asymmrate r; see ``MBConv``)

    def channels(self, c: int) -> int:
        if self.ceil_channels:
            return ceil_divisible(c * self.width_mult)
        return round_filters(c, self.width_mult, round_limit=self.round_limit)

    def scaled_stages(self) -> tuple[MBStage, ...]:
        """The stage table after width and depth scaling: what is actually built."""
        return tuple(
            dataclasses.replace(
                s,
                repeats=round_repeats(s.repeats, self.depth_mult),
                out_chs=self.channels(s.out_chs),
                mid_chs=self.channels(s.mid_chs) if s.mid_chs else 0,
            )
            for s in self.stages
        )

    def stage_rows(self) -> list[dict[str, object]]:
        def row(stage, op, kernel, stride, repeats, out, se=""):
            return dict(stage=stage, op=op, kernel=kernel, stride=stride, repeats=repeats, out=out, se=se)

        rows = [row("stem", "Conv3x3", 3, 2, 1, self.channels(self.stem_chs))]
        for i, s in enumerate(self.scaled_stages()):
            width = f" exp {s.mid_chs}" if s.mid_chs else f"{s.expand:g}"
            op = f"{'FusedMBConv' if s.block == 'fused' else 'MBConv'}{width}" + (f" {s.act}" if s.act else "")
            rows.append(row(i, op, s.kernel, s.stride, s.repeats, s.out_chs, f"se{s.se_ratio:g}" if s.se_ratio else ""))
        rows.append(row("head", "Conv1x1+pool+FC", 1, 1, 1, self.channels(self.head_chs)))
        return rows


class EfficientNet(ConvNet):
    """Stem 3×3/2 → MBConv / Fused-MBConv stages → 1×1 conv head → pool → dropout → FC (paper Table 1)."""

    def __init__(self, cfg: EfficientNetConfig, *, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__(num_classes, in_chans)
        self.cfg = cfg
        chs = cfg.channels(cfg.stem_chs)
        self.stem = make_stem(cfg, in_chans)

        rows = cfg.scaled_stages()
        total_blocks = sum(s.repeats for s in rows)
        index = 0
        built: list[list[nn.Module]] = []
        strides, widths = [], []
        for s in rows:
            if s.continues and s.stride != 1:
                raise ValueError(f"a row that continues a stage cannot change the stride: {s}")
            if not s.continues or not built:
                built.append([])
                strides.append(s.stride)
                widths.append(s.out_chs)
            widths[-1] = s.out_chs
            for j in range(s.repeats):
                drop_path = cfg.drop_path_rate * index / total_blocks  # linear in the block index
                built[-1].append(make_block(cfg, s, chs, first=j == 0, drop_path_rate=drop_path))
                chs = s.out_chs
                index += 1
        self.stages = nn.Sequential(*(nn.Sequential(*blocks) for blocks in built))
        self.feature_info = stage_feature_info(2, strides, widths, stem_chs=self.stem.out_channels)

        self.final, self.head = make_head(cfg, chs, num_classes)
        self.apply(_init_weights_tf)

    def init_classifier(self, fc: nn.Linear) -> None:
        _init_weights_tf(fc)


def _layer_kwargs(cfg: EfficientNetConfig) -> dict:
    norm = partial(nn.BatchNorm2d, eps=cfg.bn_eps, momentum=cfg.bn_momentum)
    return dict(norm_layer=norm, act_layer=cfg.act_layer, padding=cfg.padding)


def make_stem(cfg: EfficientNetConfig, in_chans: int = 3) -> nn.Module:
    """The 3×3 stride-2 stem conv of ``cfg``."""
    return ConvNormAct(in_chans, cfg.channels(cfg.stem_chs), 3, 2, **_layer_kwargs(cfg))


def make_block(
    cfg: EfficientNetConfig, stage: MBStage, in_chs: int, *, first: bool, drop_path_rate: float = 0.0
) -> nn.Module:
    """One block of a (scaled) stage row: the first carries the row's stride. Shared by the network and the
    latency table (``convscale.search.latency``), which times blocks alone."""
    return _BLOCKS[stage.block](
        in_chs,
        stage.out_chs,
        stage.kernel,
        stage.stride if first else 1,
        expand_ratio=stage.expand,
        se=dataclasses.replace(cfg.se, ratio=stage.se_ratio) if stage.se_ratio else None,
        drop_path_rate=drop_path_rate,
        **{**_layer_kwargs(cfg), "act_layer": stage.act or cfg.act_layer},
        **({"mid_chs": stage.mid_chs, "reuse": cfg.reuse} if stage.mid_chs else {}),
    )


def make_head(cfg: EfficientNetConfig, in_chs: int, num_classes: int) -> tuple[nn.Module, nn.Module]:
    """The 1×1 conv to the head width, and the classifier head (pool, dropout, FC)."""
    head_chs = cfg.channels(cfg.head_chs)
    final = ConvNormAct(in_chs, head_chs, 1, **_layer_kwargs(cfg))
    head = ClassifierHead(
        head_chs, num_classes, cfg.drop_rate, hidden=cfg.head_hidden, hidden_act=cfg.act_layer,
        hidden_bias=cfg.head_hidden_bias,
    )  # fmt: skip
    return final, head


def _init_weights_tf(m: nn.Module) -> None:
    """TPU EfficientNet init: conv N(0, sqrt(2 / fan_out)); dense U(±1/sqrt(out)); BN ones/zeros; biases zero."""
    if isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        bound = 1.0 / m.out_features**0.5
        nn.init.uniform_(m.weight, -bound, bound)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------------------------------
# Stage tables
# ---------------------------------------------------------------------------------------------------------------------

M, F = "mbconv", "fused"

#: EfficientNet-B0, paper Table 1 = TPU ``_DEFAULT_BLOCKS_ARGS``.
V1_B0 = (
    MBStage(M, 1, 3, 1, 1, 16, 0.25),
    MBStage(M, 2, 3, 2, 6, 24, 0.25),
    MBStage(M, 2, 5, 2, 6, 40, 0.25),
    MBStage(M, 3, 3, 2, 6, 80, 0.25),
    MBStage(M, 3, 5, 1, 6, 112, 0.25),
    MBStage(M, 4, 5, 2, 6, 192, 0.25),
    MBStage(M, 1, 3, 1, 6, 320, 0.25),
)

#: EfficientNetV2 tables, AutoML ``effnetv2_configs``: Fused-MBConv without SE, then MBConv with SE 0.25.
V2_BASE = (  # B0–B3
    MBStage(F, 1, 3, 1, 1, 16),
    MBStage(F, 2, 3, 2, 4, 32),
    MBStage(F, 2, 3, 2, 4, 48),
    MBStage(M, 3, 3, 2, 4, 96, 0.25),
    MBStage(M, 5, 3, 1, 6, 112, 0.25),
    MBStage(M, 8, 3, 2, 6, 192, 0.25),
)
V2_S = (
    MBStage(F, 2, 3, 1, 1, 24),
    MBStage(F, 4, 3, 2, 4, 48),
    MBStage(F, 4, 3, 2, 4, 64),
    MBStage(M, 6, 3, 2, 4, 128, 0.25),
    MBStage(M, 9, 3, 1, 6, 160, 0.25),
    MBStage(M, 15, 3, 2, 6, 256, 0.25),
)
V2_M = (
    MBStage(F, 3, 3, 1, 1, 24),
    MBStage(F, 5, 3, 2, 4, 48),
    MBStage(F, 5, 3, 2, 4, 80),
    MBStage(M, 7, 3, 2, 4, 160, 0.25),
    MBStage(M, 14, 3, 1, 6, 176, 0.25),
    MBStage(M, 18, 3, 2, 6, 304, 0.25),
    MBStage(M, 5, 3, 1, 6, 512, 0.25),
)
V2_L = (
    MBStage(F, 4, 3, 1, 1, 32),
    MBStage(F, 7, 3, 2, 4, 64),
    MBStage(F, 7, 3, 2, 4, 96),
    MBStage(M, 10, 3, 2, 4, 192, 0.25),
    MBStage(M, 19, 3, 1, 6, 224, 0.25),
    MBStage(M, 25, 3, 2, 6, 384, 0.25),
    MBStage(M, 7, 3, 1, 6, 640, 0.25),
)
V2_XL = (
    MBStage(F, 4, 3, 1, 1, 32),
    MBStage(F, 8, 3, 2, 4, 64),
    MBStage(F, 8, 3, 2, 4, 96),
    MBStage(M, 16, 3, 2, 4, 192, 0.25),
    MBStage(M, 24, 3, 1, 6, 256, 0.25),
    MBStage(M, 32, 3, 2, 6, 512, 0.25),
    MBStage(M, 8, 3, 1, 6, 640, 0.25),
)

#: Tiny tables for CI: every block kind and path (MBConv1, skip, SE, fused with and without expansion, 'same' pad).
TEST_V1 = (
    MBStage(M, 1, 3, 1, 1, 8, 0.25),
    MBStage(M, 2, 3, 2, 4, 12, 0.25),
    MBStage(M, 1, 5, 2, 4, 16, 0.25),
    MBStage(M, 1, 3, 2, 4, 24, 0.25),
    MBStage(M, 1, 5, 2, 4, 32, 0.25),
)
TEST_V2 = (
    MBStage(F, 2, 3, 1, 1, 8),
    MBStage(F, 2, 3, 2, 4, 16),
    MBStage(M, 1, 3, 2, 4, 24, 0.25),
    MBStage(M, 2, 3, 2, 4, 32, 0.25),
    MBStage(M, 1, 3, 2, 6, 40, 0.25),
)

# ---------------------------------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------------------------------

_TF = dict(padding="same", bn_eps=1e-3)  # TensorFlow conventions, for weights ported from TF

#: V1: (width, depth, resolution, dropout) as released (TPU ``efficientnet_params``), and paper Table 2 (v5).
_V1 = {
    "b0": (1.0, 1.0, 224, 0.2, Published(77.1, 5.3, 0.39)),
    "b1": (1.0, 1.1, 240, 0.2, Published(79.1, 7.8, 0.70)),
    "b2": (1.1, 1.2, 260, 0.3, Published(80.1, 9.2, 1.0)),
    "b3": (1.2, 1.4, 300, 0.3, Published(81.6, 12.0, 1.8)),
    "b4": (1.4, 1.8, 380, 0.4, Published(82.9, 19.0, 4.2)),
    "b5": (1.6, 2.2, 456, 0.4, Published(83.6, 30.0, 9.9)),
    "b6": (1.8, 2.6, 528, 0.5, Published(84.0, 43.0, 19.0)),
    "b7": (2.0, 3.1, 600, 0.5, Published(84.3, 66.0, 37.0)),
}

_V2_README = "google/automl efficientnetv2 README, ImageNet-1k checkpoints"
#: V2: (table, stem, width, depth, train size, eval size, dropout, published) (AutoML ``efficientnetv2_params``).
_V2 = {
    "s": (V2_S, 24, 1.0, 1.0, 300, 384, 0.2, Published(83.9, 21.5, 8.4, _V2_README)),
    "m": (V2_M, 24, 1.0, 1.0, 384, 480, 0.3, Published(85.2, 54.1, 24.7, _V2_README)),
    "l": (V2_L, 32, 1.0, 1.0, 384, 480, 0.4, Published(85.7, 119.5, 56.3, _V2_README)),
    "xl": (V2_XL, 32, 1.0, 1.0, 384, 512, 0.4, Published(87.3, 208.0, 94.0, "paper Table 7, ImageNet-21k pretrained")),
    "b0": (V2_BASE, 32, 1.0, 1.0, 192, 224, 0.2, Published(78.7, 7.1, 0.72, _V2_README)),
    "b1": (V2_BASE, 32, 1.0, 1.1, 192, 240, 0.2, Published(79.8, 8.1, 1.2, _V2_README)),
    "b2": (V2_BASE, 32, 1.1, 1.2, 208, 260, 0.3, Published(80.5, 10.1, 1.7, _V2_README)),
    "b3": (V2_BASE, 32, 1.2, 1.4, 240, 300, 0.3, Published(82.1, 14.4, 3.0, _V2_README)),
}


def _timm_block(block: nn.Module) -> Pairs:
    """timm's DepthwiseSeparableConv / InvertedResidual (MBConv) and ConvBnAct / EdgeResidual (Fused-MBConv)."""
    if isinstance(block, MBConv) and isinstance(block.expand, nn.Identity):
        yield from (
            ("dw.conv", "conv_dw"),
            ("dw.bn", "bn1"),
            *TIMM_SE_KEYS,
            ("project.conv", "conv_pw"),
            ("project.bn", "bn2"),
        )
    elif isinstance(block, MBConv):
        yield from (("expand.conv", "conv_pw"), ("expand.bn", "bn1"), ("dw.conv", "conv_dw"), ("dw.bn", "bn2"))
        yield from (*TIMM_SE_KEYS, ("project.conv", "conv_pwl"), ("project.bn", "bn3"))
    elif isinstance(block.project, nn.Identity):
        yield from (("fused.conv", "conv"), ("fused.bn", "bn1"))
    else:
        yield from (("fused.conv", "conv_exp"), ("fused.bn", "bn1"), *TIMM_SE_KEYS, ("project.conv", "conv_pwl"))
        yield "project.bn", "bn2"


def timm_keys(model: EfficientNet) -> Pairs:
    """timm's EfficientNet / MobileNetV3 names (``blocks.i.j``, ``conv_stem``, ``conv_head``, ``classifier``)."""
    yield from (("stem.conv", "conv_stem"), ("stem.bn", "bn1"))
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage):
            yield from ((f"stages.{i}.{j}.{a}", f"blocks.{i}.{j}.{b}") for a, b in _timm_block(block))
    if model.cfg.head_hidden:  # timm's MobileNetV3: the last 1×1 conv is a block, the hidden layer its conv_head
        last = f"blocks.{len(model.stages)}.0"
        yield from (("final.conv", f"{last}.conv"), ("final.bn", f"{last}.bn1"), ("head.hidden", "conv_head"))
    else:
        yield from (("final.conv", "conv_head"), ("final.bn", "bn2"))
    yield "head.fc", "classifier"


#: registered names with timm's architecture that timm does not have (the V2 B-series of the AutoML code)
_NOT_IN_TIMM = frozenset({"efficientnetv2_b0", "efficientnetv2_b1", "efficientnetv2_b2", "efficientnetv2_b3"})


def _register(name: str, family: str, cfg: EfficientNetConfig, *, tiny: bool = False) -> None:
    timm = Counterpart(None if tiny or name in _NOT_IN_TIMM else name, timm_keys)
    register_model(name, family, cfg, EfficientNet, tiny=tiny, counterparts={"timm": timm})


#: the TPU code's recipe (google/automl efficientnet main.py): RMSProp (decay 0.9, momentum 0.9, epsilon 1e-3), lr 0.016
#: per 256 images, ×0.97 every 2.4 epochs after 5 warm-up epochs; the paper trains with AutoAugment
V1_RECIPE = Recipe(
    optimizer="rmsprop",
    lr=0.016,
    batch_size=256,
    weight_decay=1e-5,
    epochs=350,
    warmup_epochs=5,
    schedule="exponential",
    ema_decay=0.9999,
    label_smoothing=0.1,
    source="EfficientNet paper §5.2 and the TPU code (AutoAugment, not RandAugment)",
)
#: EfficientNetV2 paper §5.1: V1's optimizer and schedule at batch 4096; progressive RandAugment, mixup and dropout
#: per size (Table 6), which ``convscale train --recipe efficientnetv2_s`` spells out as stages
V2_RECIPE = dataclasses.replace(V1_RECIPE, lr=0.256, batch_size=4096, source="EfficientNetV2 paper §5.1 and Table 6")

for _key, (_w, _d, _res, _drop, _pub) in _V1.items():
    _v1 = EfficientNetConfig(
        stages=V1_B0,
        width_mult=_w,
        depth_mult=_d,
        train_res=_res,
        test_res=_res,
        drop_rate=_drop,
        drop_path_rate=0.2,
        published=_pub,
        recipe=V1_RECIPE,
    )
    _register(f"efficientnet_{_key}", "efficientnet", _v1)
    # TF's BN momentum 0.99 (TPU V1 code) is PyTorch's 0.01
    _register(f"tf_efficientnet_{_key}", "efficientnet", dataclasses.replace(_v1, bn_momentum=0.01, **_TF))

for _key, (_table, _stem, _w, _d, _train, _test, _drop, _pub) in _V2.items():
    _v2 = EfficientNetConfig(
        stages=_table,
        stem_chs=_stem,
        width_mult=_w,
        depth_mult=_d,
        round_limit=0.0,
        train_res=_train,
        test_res=_test,
        drop_rate=_drop,
        drop_path_rate=0.2,
        published=_pub,
        recipe=V2_RECIPE,
    )
    _register(f"efficientnetv2_{_key}", "efficientnetv2", _v2)
    # the AutoML V2 code uses Keras BN momentum 0.9 (PyTorch 0.1); its paper says 0.99
    _register(f"tf_efficientnetv2_{_key}", "efficientnetv2", dataclasses.replace(_v2, **_TF))

_test_v1 = EfficientNetConfig(
    stages=TEST_V1, stem_chs=8, head_chs=64, train_res=64, test_res=64, drop_rate=0.2, drop_path_rate=0.2
)
_test_v2 = EfficientNetConfig(
    stages=TEST_V2,
    stem_chs=8,
    head_chs=64,
    round_limit=0.0,
    train_res=64,
    test_res=64,
    drop_rate=0.2,
    drop_path_rate=0.2,
)
_register("test_efficientnet", "efficientnet", _test_v1, tiny=True)
_register("test_efficientnetv2", "efficientnetv2", _test_v2, tiny=True)
_register("test_tf_efficientnetv2", "efficientnetv2", dataclasses.replace(_test_v2, **_TF), tiny=True)

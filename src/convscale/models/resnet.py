"""ResNet (He et al., 2016), in torchvision/timm layout so their weights load.

The config also spans the ConvNeXt modernization study (``models/roadmap.py``) up to its last step: stage ratio,
patchify stem, depthwise groups, width, the inverted bottleneck and its micro design are fields here, so each step
of the study is this network with one field changed.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Literal

from torch import nn

from ..config import ModelConfig, Published, Recipe
from ..layers import BasicBlock, Bottleneck, ConvNormAct, InvertedBottleneck
from ..registry import register_model
from ..utils.keymap import Counterpart, Pairs, tensor_owners
from .base import ClassifierHead, ConvNet, FeatureInfo

__all__ = ["RESNET_RECIPE", "ResNet", "ResNetConfig"]

_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck, "inverted": InvertedBottleneck}

#: torchvision's ResNet recipe (the baseline of ConvNeXt's Table 10: 76.13%)
RESNET_RECIPE = Recipe(
    optimizer="sgd",
    lr=0.1,
    batch_size=256,
    weight_decay=1e-4,
    epochs=90,
    warmup_epochs=0,
    schedule="step",
    source="torchvision references: SGD momentum 0.9, lr ×0.1 every 30 epochs",
)


@dataclass(frozen=True, kw_only=True)
class ResNetConfig(ModelConfig):
    block: Literal["basic", "bottleneck", "inverted"] = "bottleneck"
    depths: tuple[int, ...] = (3, 4, 6, 3)
    width: int = 64  # of the first stage's bottleneck (doubles per stage); the stem has this width too
    stem: Literal["resnet", "patchify"] = "resnet"  # 7×7/2 conv + 3×3/2 max pool, or one 4×4/4 conv
    kernel_size: int = 3  # of the spatial conv (bottleneck, inverted)
    groups: int = 1  # of the bottleneck's spatial conv; -1: depthwise
    dw_first: bool = False  # inverted: depthwise conv before the 1×1 convs
    one_act: bool = False  # inverted: one activation per block
    one_norm: bool = False  # inverted: one norm per block
    act_layer: str = "relu"
    norm_layer: str = "batchnorm"
    layer_scale: float | None = None
    zero_init_last: bool = True

    def block_kwargs(self) -> dict[str, object]:
        kw: dict[str, object] = dict(act_layer=self.act_layer, norm_layer=self.norm_layer, layer_scale=self.layer_scale)
        if self.block == "bottleneck":
            kw.update(kernel_size=self.kernel_size, groups=self.groups)
        elif self.block == "inverted":
            kw.update(
                kernel_size=self.kernel_size, dw_first=self.dw_first, one_act=self.one_act, one_norm=self.one_norm
            )
        return kw

    def stage_rows(self) -> list[dict[str, object]]:
        exp = _BLOCKS[self.block].expansion
        rows: list[dict[str, object]] = [
            {"stage": "stem", "op": "7x7/2 + maxpool" if self.stem == "resnet" else "4x4/4 patchify", "out": self.width}
        ]
        for i, d in enumerate(self.depths):
            w = self.width * 2**i
            rows.append(
                {"stage": i, "op": self.block, "repeats": d, "stride": 1 if i == 0 else 2, "width": w, "out": w * exp}
            )
        return rows


class ResNet(ConvNet):
    """Stem → four stages of residual blocks (stride 2 from the second on) → global pool → FC."""

    def __init__(self, cfg: ResNetConfig, *, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__(num_classes, in_chans)
        self.cfg = cfg
        if cfg.stem == "resnet":
            self.stem = ConvNormAct(in_chans, cfg.width, 7, 2, norm_layer=cfg.norm_layer, act_layer=cfg.act_layer)
            self.stem_pool = nn.MaxPool2d(3, 2, 1)
            stem_info = [FeatureInfo("stem", cfg.width, 2)]
        else:  # the ConvNeXt study's "patchify" stem: replaces the conv, norm, act and pool
            self.stem = nn.Conv2d(in_chans, cfg.width, 4, 4)
            self.stem_pool = nn.Identity()
            stem_info = []
        block_cls, kw = _BLOCKS[cfg.block], cfg.block_kwargs()
        total, index, chs = sum(cfg.depths), 0, cfg.width
        stages, self.feature_info = [], stem_info
        for i, depth in enumerate(cfg.depths):
            width = cfg.width * 2**i
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                dpr = cfg.drop_path_rate * index / max(total - 1, 1)
                blocks.append(block_cls(chs, width, stride, drop_path_rate=dpr, **kw))
                chs, index = width * block_cls.expansion, index + 1
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(FeatureInfo(f"stages.{i}", chs, 4 * 2**i))
        self.stages = nn.Sequential(*stages)
        self.final = nn.Identity()
        self.head = ClassifierHead(chs, num_classes, cfg.drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.cfg.zero_init_last:
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck | InvertedBottleneck):
                    m.zero_init_last()


_PUB_TV = "torchvision (original 90-epoch recipe); paper Table 3 reports 10-crop"
_VARIANTS = {
    "resnet18": ResNetConfig(block="basic", depths=(2, 2, 2, 2), published=Published(69.76, 11.7, 1.8, _PUB_TV)),
    "resnet34": ResNetConfig(block="basic", depths=(3, 4, 6, 3), published=Published(73.31, 21.8, 3.6, _PUB_TV)),
    "resnet50": ResNetConfig(block="bottleneck", depths=(3, 4, 6, 3), published=Published(76.13, 25.6, 4.1, _PUB_TV)),
}
_TIMM = [  # (our module name, timm's), applied in order
    (r"^stem\.conv$", "conv1"),
    (r"^stem\.bn$", "bn1"),
    (r"^stages\.(\d+)\.(\d+)\.branch\.(\d+)\.conv$", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.conv{int(m[3]) + 1}"),
    (r"^stages\.(\d+)\.(\d+)\.branch\.(\d+)\.bn$", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.bn{int(m[3]) + 1}"),
    (r"^stages\.(\d+)\.(\d+)\.shortcut\.conv$", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.0"),
    (r"^stages\.(\d+)\.(\d+)\.shortcut\.bn$", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.1"),
    (r"^head\.fc$", "fc"),
]


def timm_keys(model: ResNet) -> Pairs:
    """timm's (and torchvision's) ResNet names: ``conv1``, ``layerN.j.convK``, ``downsample``, ``fc``."""
    for name in tensor_owners(model):
        for pattern, theirs in _TIMM:
            if re.match(pattern, name):
                yield name, re.sub(pattern, theirs, name)
                break
        else:
            raise ValueError(f"no timm name for {name!r}: this ResNet variant has no timm counterpart")


for _name, _cfg in _VARIANTS.items():
    _timm = {"timm": Counterpart(_name, timm_keys)}
    register_model(_name, "resnet", dataclasses.replace(_cfg, recipe=RESNET_RECIPE), ResNet, counterparts=_timm)

register_model(
    "test_resnet",
    "resnet",
    ResNetConfig(block="bottleneck", depths=(1, 2, 1, 1), width=8, train_res=64, test_res=64, drop_path_rate=0.1),
    ResNet,
    tiny=True,
    counterparts={"timm": Counterpart(None, timm_keys)},
)

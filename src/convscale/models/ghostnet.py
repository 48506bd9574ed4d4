"""GhostNet (Han et al., 2020): MobileNetV3's layout with Ghost bottlenecks.

Stem 3×3/2 (16) → nine groups of Ghost bottlenecks (paper Table 1: kernel, expansion width, output, SE, stride) →
1×1 conv to 960 → pool → linear 1280 + ReLU → dropout → FC. Widths are multiplied by ``width`` and rounded to 4; SE
takes 1/4 of the expanded width (rounded to 4) with a hard-sigmoid gate. Grouping as in the official code and timm.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from ..config import ModelConfig, Published
from ..layers import ConvNormAct, SEConfig, make_divisible
from ..layers.ghost import GhostBottleneck
from ..registry import register_model
from ..utils.keymap import TIMM_SE_KEYS, Counterpart, Pairs
from .base import ClassifierHead, ConvNet, stage_feature_info

__all__ = ["GhostNet", "GhostNetConfig", "GhostRow"]


@dataclass(frozen=True)
class GhostRow:
    """One Ghost bottleneck: kernel, expanded (mid) width, output width, SE ratio, stride."""

    kernel: int
    mid_chs: int
    out_chs: int
    se_ratio: float
    stride: int


#: GhostNet's SE: 1/4 of the expanded width rounded to 4, ReLU inside, hard-sigmoid gate
GHOST_SE = SEConfig(from_expanded=True, divisor=4, act_layer="relu", gate_layer="hard_sigmoid")


@dataclass(frozen=True, kw_only=True)
class GhostNetConfig(ModelConfig):
    stages: tuple[tuple[GhostRow, ...], ...]
    width: float = 1.0
    stem_chs: int = 16
    head_chs: int = 960
    head_hidden: int = 1280
    se: SEConfig = GHOST_SE

    def channels(self, c: int) -> int:
        return make_divisible(c * self.width, 4)

    def stage_rows(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = [
            {"stage": "stem", "op": "Conv3x3", "stride": 2, "out": self.channels(self.stem_chs)}
        ]
        for i, stage in enumerate(self.stages):
            for r in stage:
                op = f"Ghost k{r.kernel} mid {self.channels(r.mid_chs)}" + (f" se{r.se_ratio:g}" if r.se_ratio else "")
                rows.append({"stage": i, "op": op, "stride": r.stride, "out": self.channels(r.out_chs)})
        rows.append(
            {"stage": "head", "op": f"Conv1x1 + pool + FC {self.head_hidden}", "out": self.channels(self.head_chs)}
        )
        return rows


class GhostNet(ConvNet):
    def __init__(self, cfg: GhostNetConfig, *, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__(num_classes, in_chans)
        self.cfg = cfg
        chs = cfg.channels(cfg.stem_chs)
        self.stem = ConvNormAct(in_chans, chs, 3, 2)
        total = sum(len(s) for s in cfg.stages)
        index, stages = 0, []
        for stage in cfg.stages:
            blocks = []
            for r in stage:
                out = cfg.channels(r.out_chs)
                se = dataclasses.replace(cfg.se, ratio=r.se_ratio) if r.se_ratio else None
                rate = cfg.drop_path_rate * index / total
                blocks.append(
                    GhostBottleneck(chs, cfg.channels(r.mid_chs), out, r.kernel, r.stride, se=se, drop_path_rate=rate)
                )
                chs, index = out, index + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.feature_info = stage_feature_info(
            2,
            [s[0].stride for s in cfg.stages],
            [cfg.channels(s[-1].out_chs) for s in cfg.stages],
            stem_chs=self.stem.out_channels,
        )
        head_chs = cfg.channels(cfg.head_chs)
        self.final = ConvNormAct(chs, head_chs, 1)
        self.head = ClassifierHead(head_chs, num_classes, cfg.drop_rate, hidden=cfg.head_hidden, hidden_act="relu")


R = GhostRow
#: paper Table 1 (k, exp, out, SE, stride), grouped as the official code's ``cfgs``
GHOSTNET = (
    (R(3, 16, 16, 0, 1),),
    (R(3, 48, 24, 0, 2),),
    (R(3, 72, 24, 0, 1),),
    (R(5, 72, 40, 0.25, 2),),
    (R(5, 120, 40, 0.25, 1),),
    (R(3, 240, 80, 0, 2),),
    (R(3, 200, 80, 0, 1), R(3, 184, 80, 0, 1), R(3, 184, 80, 0, 1), R(3, 480, 112, 0.25, 1), R(3, 672, 112, 0.25, 1)),
    (R(5, 672, 160, 0.25, 2),),
    (R(5, 960, 160, 0, 1), R(5, 960, 160, 0.25, 1), R(5, 960, 160, 0, 1), R(5, 960, 160, 0.25, 1)),
)
_GHOSTNET = GhostNetConfig(
    stages=GHOSTNET,
    drop_rate=0.2,
    published=Published(73.9, 5.2, 0.141, "Efficient-AI-Backbones README (141M FLOPs, 26.07% top-1 error)"),
)


def _ghost_module(ours: str, theirs: str) -> Pairs:
    for part, their_part in (("primary", "primary_conv"), ("cheap", "cheap_operation")):
        yield f"{ours}.{part}.conv", f"{theirs}.{their_part}.0"
        yield f"{ours}.{part}.bn", f"{theirs}.{their_part}.1"


def timm_keys(model: GhostNet) -> Pairs:
    """timm's GhostNet names: ``blocks.i.j`` with ``ghost1/2``, ``conv_dw``, ``se``, ``shortcut.0…3``."""
    yield from (("stem.conv", "conv_stem"), ("stem.bn", "bn1"))
    for i, stage in enumerate(model.stages):
        for j in range(len(stage)):
            ours, theirs = f"stages.{i}.{j}", f"blocks.{i}.{j}"
            yield from _ghost_module(f"{ours}.ghost1", f"{theirs}.ghost1")
            yield from _ghost_module(f"{ours}.ghost2", f"{theirs}.ghost2")
            yield from ((f"{ours}.dw.conv", f"{theirs}.conv_dw"), (f"{ours}.dw.bn", f"{theirs}.bn_dw"))
            yield from ((f"{ours}.{a}", f"{theirs}.{b}") for a, b in TIMM_SE_KEYS)
            for k in range(2):  # shortcut: (dw conv, bn), (1×1 conv, bn) -> shortcut.0 … 3
                yield f"{ours}.shortcut.{k}.conv", f"{theirs}.shortcut.{2 * k}"
                yield f"{ours}.shortcut.{k}.bn", f"{theirs}.shortcut.{2 * k + 1}"
    last = f"blocks.{len(model.stages)}.0"
    yield from (("final.conv", f"{last}.conv"), ("final.bn", f"{last}.bn1"))
    yield from (("head.hidden", "conv_head"), ("head.fc", "classifier"))


register_model(
    "ghostnet_100", "ghostnet", _GHOSTNET, GhostNet, counterparts={"timm": Counterpart("ghostnet_100", timm_keys)}
)
_TEST = (
    (R(3, 8, 8, 0, 1),),
    (R(3, 24, 12, 0, 2), R(3, 36, 12, 0.25, 1)),
    (R(5, 36, 16, 0.25, 2),),
    (R(3, 48, 24, 0, 2), R(3, 64, 24, 0.25, 1)),
    (R(3, 64, 32, 0.25, 2),),
)
register_model(
    "test_ghostnet",
    "ghostnet",
    dataclasses.replace(
        _GHOSTNET, stages=_TEST, stem_chs=8, head_chs=48, head_hidden=64, published=None, train_res=64, test_res=64
    ),
    GhostNet,
    tiny=True,
    counterparts={"timm": Counterpart(None, timm_keys)},
)

"""ShuffleNetV2 (Ma et al., 2018): stem 3×3/2 (24) + max pool → three stages of shuffle units → 1×1 conv → pool → FC.

Stage widths per multiplier and repeats (4, 8, 4) as in the paper's Table 5, the official Megvii code and
torchvision's ``shufflenet_v2_x*`` (whose weights load through ``convscale.interop.from_torchvision``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..config import ModelConfig, Published
from ..layers import ConvNormAct
from ..layers.shuffle import ShuffleUnit
from ..registry import register_model
from ..utils.keymap import Counterpart, Pairs, conv_norm_keys
from .base import ClassifierHead, ConvNet, FeatureInfo

__all__ = ["ShuffleNetV2", "ShuffleNetV2Config"]


@dataclass(frozen=True, kw_only=True)
class ShuffleNetV2Config(ModelConfig):
    widths: tuple[int, ...]  # the three stages
    head_chs: int = 1024
    depths: tuple[int, ...] = (4, 8, 4)
    stem_chs: int = 24

    def stage_rows(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = [
            {"stage": "stem", "op": "Conv3x3 + maxpool", "stride": 4, "out": self.stem_chs}
        ]
        for i, (d, c) in enumerate(zip(self.depths, self.widths, strict=True)):
            rows.append({"stage": i, "op": "ShuffleUnit", "repeats": d, "stride": 2, "out": c})
        rows.append({"stage": "head", "op": "Conv1x1 + pool + FC", "out": self.head_chs})
        return rows


class ShuffleNetV2(ConvNet):
    def __init__(self, cfg: ShuffleNetV2Config, *, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__(num_classes, in_chans)
        self.cfg = cfg
        self.stem = ConvNormAct(in_chans, cfg.stem_chs, 3, 2)
        self.stem_pool = nn.MaxPool2d(3, 2, 1)
        self.feature_info = [FeatureInfo("stem", cfg.stem_chs, 2), FeatureInfo("stem_pool", cfg.stem_chs, 4)]
        chs, stages = cfg.stem_chs, []
        for i, (depth, out_chs) in enumerate(zip(cfg.depths, cfg.widths, strict=True)):
            stages.append(
                nn.Sequential(
                    *(ShuffleUnit(chs if j == 0 else out_chs, out_chs, 2 if j == 0 else 1) for j in range(depth))
                )
            )
            chs = out_chs
            self.feature_info.append(FeatureInfo(f"stages.{i}", chs, 8 * 2**i))
        self.stages = nn.Sequential(*stages)
        self.final = ConvNormAct(chs, cfg.head_chs, 1)
        self.head = ClassifierHead(cfg.head_chs, num_classes, cfg.drop_rate)


_README = "Megvii ShuffleNet-Series README (top-1 = 100 - its error column)"
_VARIANTS = {
    "x0_5": ((48, 96, 192), 1024, Published(61.1, 1.4, 0.041, _README)),
    "x1_0": ((116, 232, 464), 1024, Published(69.4, 2.3, 0.146, _README)),
    "x1_5": ((176, 352, 704), 1024, Published(72.6, 3.5, 0.299, _README)),
    "x2_0": ((244, 488, 976), 2048, Published(75.0, 7.4, 0.591, _README)),
}


def torchvision_keys(model: ShuffleNetV2) -> Pairs:
    """torchvision's ``shufflenet_v2_*`` names (``conv1``, ``stage2``…``stage4``, ``conv5``, ``fc``)."""
    yield from conv_norm_keys("stem", "conv1")
    for i, stage in enumerate(model.stages):
        for j, unit in enumerate(stage):
            ours, theirs = f"stages.{i}.{j}", f"stage{i + 2}.{j}"
            if unit.branch1 is not None:
                yield from conv_norm_keys(f"{ours}.branch1.0", f"{theirs}.branch1")
                yield from conv_norm_keys(f"{ours}.branch1.1", f"{theirs}.branch1", 2)
            for k in range(3):  # 1×1 + ReLU, dw, 1×1 + ReLU: conv/bn at 0/1, 3/4, 5/6
                yield from conv_norm_keys(f"{ours}.branch2.{k}", f"{theirs}.branch2", (0, 3, 5)[k])
    yield from conv_norm_keys("final", "conv5")
    yield "head.fc", "fc"


for _name, (_widths, _head, _pub) in _VARIANTS.items():
    _cfg = ShuffleNetV2Config(widths=_widths, head_chs=_head, published=_pub)
    _tv = Counterpart(f"shufflenet_v2_{_name}", torchvision_keys)
    register_model(f"shufflenet_v2_{_name}", "shufflenet_v2", _cfg, ShuffleNetV2, counterparts={"torchvision": _tv})
register_model(
    "test_shufflenet_v2",
    "shufflenet_v2",
    ShuffleNetV2Config(widths=(16, 32, 64), head_chs=64, depths=(2, 2, 1), stem_chs=8, train_res=64, test_res=64),
    ShuffleNetV2,
    tiny=True,
    counterparts={"torchvision": Counterpart(None, torchvision_keys)},
)

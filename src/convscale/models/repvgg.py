"""RepVGG (Ding et al., 2021): a VGG-style stack of 3×3 convs, trained with 1×1 and identity branches.

Stage 0 is one block 3 → min(64, 64a) at stride 2; stages 1–4 have widths 64a, 128a, 256a, 512b and start with a
stride-2 block (docs/papers.md §5.2). The grouped variants (g2, g4) use grouped 3×3 convs on every second block counted
over the whole network after stage 0 (the official ``optional_groupwise_layers`` 2, 4, …, 26). ``deploy.fuse`` (or
``RepVGGBlock.reparameterize``) turns a trained model into the plain 3×3 stack the paper deploys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from ..config import ModelConfig, Published, Recipe
from ..layers.repvgg import RepVGGBlock
from ..registry import register_model
from ..utils.keymap import Counterpart, same_names
from .base import ClassifierHead, ConvNet, FeatureInfo

__all__ = ["REPVGG_RECIPE", "RepVGG", "RepVGGConfig"]


@dataclass(frozen=True, kw_only=True)
class RepVGGConfig(ModelConfig):
    depths: tuple[int, ...]  # blocks in stages 1–4
    a: float  # width multiplier of stages 1–3 (and of stage 0, capped at 64)
    b: float  # width multiplier of stage 4
    groups: int = 1  # groups of the grouped blocks (g2, g4)
    base_widths: tuple[int, ...] = (64, 128, 256, 512)

    @property
    def widths(self) -> tuple[int, ...]:
        *first, last = self.base_widths
        return (*(int(c * self.a) for c in first), int(last * self.b))

    @property
    def stem_chs(self) -> int:
        return min(64, int(64 * self.a))

    def block_groups(self, index: int) -> int:
        """Groups of the ``index``-th block after stage 0 (0-based): the official layers 2, 4, … are grouped."""
        return self.groups if (index + 1) % 2 == 0 else 1

    def stage_rows(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = [
            {"stage": 0, "op": "RepVGGBlock", "repeats": 1, "stride": 2, "out": self.stem_chs}
        ]
        for i, (d, c) in enumerate(zip(self.depths, self.widths, strict=True)):
            rows.append({"stage": i + 1, "op": "RepVGGBlock", "repeats": d, "stride": 2, "out": c})
        if self.groups > 1:
            rows.append({"stage": "", "op": f"every second block: groups={self.groups}"})
        return rows


class RepVGG(ConvNet):
    """Stage 0 (one RepVGG block, /2) → four stages of RepVGG blocks (each /2) → pool → FC."""

    def __init__(self, cfg: RepVGGConfig, *, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__(num_classes, in_chans)
        self.cfg = cfg
        self.stem = RepVGGBlock(in_chans, cfg.stem_chs, 2)
        chs, index, stages = cfg.stem_chs, 0, []
        self.feature_info = [FeatureInfo("stem", chs, 2)]
        for i, (depth, out_chs) in enumerate(zip(cfg.depths, cfg.widths, strict=True)):
            blocks = []
            for j in range(depth):
                blocks.append(RepVGGBlock(chs, out_chs, 2 if j == 0 else 1, groups=cfg.block_groups(index)))
                chs, index = out_chs, index + 1
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(FeatureInfo(f"stages.{i}", chs, 4 * 2**i))
        self.stages = nn.Sequential(*stages)
        self.final = nn.Identity()
        self.head = ClassifierHead(chs, num_classes, cfg.drop_rate)


#: RepVGG README: 120 epochs, cosine from 0.1, batch 256, wd 1e-4, RandomResizedCrop + flip only
REPVGG_RECIPE = Recipe(
    optimizer="sgd",
    lr=0.1,
    batch_size=256,
    weight_decay=1e-4,
    epochs=120,
    warmup_epochs=0,
    schedule="cosine",
    source="RepVGG README: simple augmentation; no weight decay on BN and biases",
)
_A, _B = (2, 4, 14, 1), (4, 6, 16, 1)
_T4 = "paper Table 4 (params after re-parameterization)"
_T5 = "paper Table 5 (200 epochs, stronger augmentation; params after re-parameterization)"
# name: (depths, a, b, groups, published)
_VARIANTS = {
    "a0": (_A, 0.75, 2.5, 1, Published(72.41, 8.30, 1.4, _T4)),
    "a1": (_A, 1.0, 2.5, 1, Published(74.46, 12.78, 2.4, _T4)),
    "a2": (_A, 1.5, 2.75, 1, Published(76.48, 25.49, 5.1, _T4)),
    "b0": (_B, 1.0, 2.5, 1, Published(75.14, 14.33, 3.1, _T4)),
    "b1": (_B, 2.0, 4.0, 1, Published(78.37, 51.82, 11.8, _T4)),
    "b1g2": (_B, 2.0, 4.0, 2, Published(77.78, 41.36, 8.8, _T4)),
    "b1g4": (_B, 2.0, 4.0, 4, Published(77.58, 36.12, 7.3, _T4)),
    "b2": (_B, 2.5, 5.0, 1, Published(78.78, 80.31, 18.4, _T4)),
    "b2g2": (_B, 2.5, 5.0, 2, None),
    "b2g4": (_B, 2.5, 5.0, 4, Published(78.50, 55.77, 11.3, _T4)),
    "b3": (_B, 3.0, 5.0, 1, Published(80.52, 110.96, 26.2, _T5)),
    "b3g2": (_B, 3.0, 5.0, 2, None),
    "b3g4": (_B, 3.0, 5.0, 4, Published(80.21, 75.62, 16.1, _T5)),
}
_NOT_IN_TIMM = frozenset({"b1g2", "b2g2", "b3g2"})
for _name, (_depths, _a, _b, _groups, _pub) in _VARIANTS.items():
    _cfg = RepVGGConfig(depths=_depths, a=_a, b=_b, groups=_groups, published=_pub, recipe=REPVGG_RECIPE)
    _timm = Counterpart(None if _name in _NOT_IN_TIMM else f"repvgg_{_name}", same_names)  # timm's ByobNet names
    register_model(f"repvgg_{_name}", "repvgg", _cfg, RepVGG, counterparts={"timm": _timm})

register_model(
    "test_repvgg",
    "repvgg",
    dataclasses.replace(_cfg, depths=(1, 2, 2, 1), a=0.125, b=0.25, groups=2, published=None, recipe=None),
    RepVGG,
    tiny=True,
    counterparts={"timm": Counterpart(None, same_names)},
)

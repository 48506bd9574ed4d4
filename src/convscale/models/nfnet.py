"""Normalizer-free networks: NFNet F0–F7 (Brock et al., 2021b) and NF-ResNet-50 (Brock et al., 2021a).

No batch norm anywhere: scaled weight-standardized convs, variance-preserving activations and the NF block's
α/β bookkeeping keep the signal's scale (layers/nf_block.py). ``nfnet_f*`` follow timm (activation γ folded into the
convs, PyTorch padding); ``dm_nfnet_f*`` follow DeepMind's code (γ on the activations, TF 'same' padding, a SkipInit
gain per block), so DeepMind's weights and timm's ``dm_`` ports load. Train with adaptive gradient clipping
(``convscale.methods.agc.adaptive_clip_grad_``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import partial
from typing import Literal

from torch import nn

from ..config import ModelConfig, Published, Recipe
from ..layers.conv import Padding
from ..layers.nf_block import NF_GAMMA, GammaAct, NFBlock
from ..layers.std_conv import ScaledStdConv2d
from ..registry import get_entry, register_model
from ..utils.keymap import Counterpart, Pairs, tensor_owners
from .base import ClassifierHead, ConvNet, FeatureInfo

__all__ = ["NFNET_RECIPE", "NFNetConfig", "NormFreeNet"]


@dataclass(frozen=True, kw_only=True)
class NFNetConfig(ModelConfig):
    depths: tuple[int, ...] = (1, 2, 6, 3)
    channels: tuple[int, ...] = (256, 512, 1536, 1536)
    stem: Literal["deep_quad", "7x7_pool"] = "deep_quad"  # NFNet: four 3×3 convs (/4); NF-ResNet: 7×7/2 + max pool
    stem_chs: int = 128
    bottle_ratio: float = 0.5
    group_size: int | None = 128  # grouped 3×3 convs of 128 channels per group
    extra_conv: bool = True  # NFNet's second 3×3 conv
    se_ratio: float | None = 0.5  # SE after the last 1×1, of the block output, doubled
    final_chs: int = 3072  # 1×1 conv before pooling (2× the last width); 0: none
    act_layer: str = "gelu"
    alpha: float = 0.2
    gamma_in_act: bool = False  # DeepMind: γ on the activations; timm: folded into the convs
    padding: Padding = "symmetric"
    skipinit: bool = False  # DeepMind: a zero-initialized scalar gain on each residual branch
    conv3_gain: float = 0.0  # init of the branch's last conv gain (timm's stand-in for SkipInit when it is off)
    std_conv_eps: float = 1e-5
    pool_shortcut: bool = True  # transition shortcut: 2×2 avg pool + 1×1 conv (NFNet, timm); False: strided 1×1
    randaugment_layers: int = 4
    randaugment_magnitude: int = 5

    def stage_rows(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = [{"stage": "stem", "op": self.stem, "out": self.stem_chs}]
        for i, (d, c) in enumerate(zip(self.depths, self.channels, strict=True)):
            rows.append({"stage": i, "op": "NFBlock", "repeats": d, "stride": 1 if i == 0 else 2, "out": c})
        if self.final_chs:
            rows.append({"stage": "final", "op": "1x1 conv", "out": self.final_chs})
        return rows


def _stem(cfg: NFNetConfig, in_chans: int, conv, act) -> tuple[nn.Module, nn.Module, list[FeatureInfo]]:
    """(stem, its pool, its feature info): NFNet's four 3×3 convs, or NF-ResNet's 7×7 conv and max pool."""
    if cfg.stem != "deep_quad":
        return conv(in_chans, cfg.stem_chs, 7, 2), nn.MaxPool2d(3, 2, 1), [FeatureInfo("stem", cfg.stem_chs, 2)]
    c, prev = cfg.stem_chs, in_chans
    stem = nn.Sequential()  # 3×3 convs to c/8 (/2), c/4, c/2, c (/2); no act after the last
    for i, (chs, stride) in enumerate(zip((c // 8, c // 4, c // 2, c), (2, 1, 1, 2), strict=True)):
        stem.add_module(f"conv{i + 1}", conv(prev, chs, 3, stride))
        if i < 3:
            stem.add_module(f"act{i + 2}", act())
        prev = chs
    return stem, nn.Identity(), []


class NormFreeNet(ConvNet):
    """Stem → NF bottleneck stages (β from the tracked expected variance, reset after each transition) →
    1×1 conv → act → pool → dropout → FC."""

    def __init__(self, cfg: NFNetConfig, *, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__(num_classes, in_chans)
        self.cfg = cfg
        gamma = NF_GAMMA[cfg.act_layer]
        conv = partial(
            ScaledStdConv2d, padding=cfg.padding, eps=cfg.std_conv_eps, gamma=1.0 if cfg.gamma_in_act else gamma
        )
        act = partial(GammaAct, cfg.act_layer, gamma if cfg.gamma_in_act else 1.0)

        self.stem, self.stem_pool, self.feature_info = _stem(cfg, in_chans, conv, act)

        total = sum(cfg.depths)
        index, chs, expected_var = 0, cfg.stem_chs, 1.0
        stages = []
        for i, (depth, out_chs) in enumerate(zip(cfg.depths, cfg.channels, strict=True)):
            blocks = []
            for j in range(depth):
                blocks.append(
                    NFBlock(
                        chs,
                        out_chs,
                        (1 if i == 0 else 2) if j == 0 else 1,
                        alpha=cfg.alpha,
                        beta=expected_var**-0.5,
                        conv=conv,
                        act=act,
                        bottle_ratio=cfg.bottle_ratio,
                        group_size=cfg.group_size,
                        extra_conv=cfg.extra_conv,
                        se_ratio=cfg.se_ratio,
                        skipinit=cfg.skipinit,
                        conv3_gain=cfg.conv3_gain,
                        pool_shortcut=cfg.pool_shortcut,
                        drop_path_rate=cfg.drop_path_rate * index / total,
                    )
                )
                if j == 0:
                    expected_var = 1.0  # the transition block's shortcut starts from the normalized input
                expected_var += cfg.alpha**2
                chs, index = out_chs, index + 1
            stages.append(nn.Sequential(*blocks))
            self.feature_info.append(FeatureInfo(f"stages.{i}", chs, 4 * 2**i))
        self.stages = nn.Sequential(*stages)

        self.final = nn.Sequential()
        if cfg.final_chs:
            self.final.add_module("conv", conv(chs, cfg.final_chs, 1))
            chs = cfg.final_chs
        self.final.add_module("act", act())
        self.head = ClassifierHead(chs, num_classes, cfg.drop_rate)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if isinstance(self.head.fc, nn.Linear):
            self.init_classifier(self.head.fc)

    def init_classifier(self, fc: nn.Linear) -> None:
        """N(0, 0.01) weights and zero bias, as DeepMind's code."""
        nn.init.normal_(fc.weight, 0.0, 0.01)
        nn.init.zeros_(fc.bias)


#: NFNets paper App. A; DeepMind experiment_nfnets.py (λ = 0.01 AGC at batch 4096)
NFNET_RECIPE = Recipe(
    optimizer="sgd",  # Nesterov
    lr=0.1,
    batch_size=256,
    weight_decay=2e-5,
    epochs=360,
    warmup_epochs=5,
    schedule="cosine",
    ema_decay=0.99999,
    label_smoothing=0.1,
    mixup=0.2,
    cutmix=1.0,
    source="NFNets paper App. A: SGD Nesterov 0.9, lr 0.1·B/256, AGC λ=0.01 at batch 4096, RandAugment 4 layers",
)


def timm_keys(model: NormFreeNet) -> Pairs:
    """timm's names are ours, but for the SE (``attn_last.fc1/fc2``), the final conv and a single-conv stem."""
    for name in tensor_owners(model):
        theirs = re.sub(r"\.se\.reduce$", ".attn_last.fc1", name)
        theirs = re.sub(r"\.se\.expand$", ".attn_last.fc2", theirs)
        theirs = {"final.conv": "final_conv", "stem": "stem.conv"}.get(theirs, theirs)
        yield name, theirs


def _timm(name: str | None, **form: object) -> dict[str, Counterpart]:
    return {"timm": Counterpart(name, timm_keys, form)}


#: timm's nf_resnet50 computes another function with the same parameters: it folds the ReLU's γ into every conv, the
#: stem's too, and average-pools before its transition shortcuts (ours follows the NF-ResNet paper, whose variance
#: matches the α/β bookkeeping); its weights load into this form
_TIMM_NF_RESNET = {"gamma_in_act": False, "pool_shortcut": True}

_T1 = "NFNets paper Table 1 (FLOPs at the test size)"
# name: (depths, train, test, dropout, RandAugment magnitude, published)
_F = {
    "f0": ((1, 2, 6, 3), 192, 256, 0.2, 5, Published(83.6, 71.5, 12.38, _T1)),
    "f1": ((2, 4, 12, 6), 224, 320, 0.3, 10, Published(84.7, 132.6, 35.54, _T1)),
    "f2": ((3, 6, 18, 9), 256, 352, 0.4, 10, Published(85.1, 193.8, 62.59, _T1)),
    "f3": ((4, 8, 24, 12), 320, 416, 0.4, 15, Published(85.7, 254.9, 114.76, _T1)),
    "f4": ((5, 10, 30, 15), 384, 512, 0.5, 15, Published(85.9, 316.1, 215.24, _T1)),
    "f5": ((6, 12, 36, 18), 416, 544, 0.5, 15, Published(86.0, 377.2, 289.76, _T1)),
    "f6": ((7, 14, 42, 21), 448, 576, 0.5, 15, Published(86.5, 438.4, 377.28, _T1)),
    "f7": ((8, 16, 48, 24), 480, 608, 0.5, 15, None),  # in the code only
}
for _v, (_depths, _train, _test, _drop, _ra, _pub) in _F.items():
    _cfg = NFNetConfig(
        depths=_depths,
        train_res=_train,
        test_res=_test,
        drop_rate=_drop,
        drop_path_rate=0.25,
        randaugment_magnitude=_ra,
        published=_pub,
        recipe=NFNET_RECIPE,
    )
    register_model(f"nfnet_{_v}", "nfnet", _cfg, NormFreeNet, counterparts=_timm(f"nfnet_{_v}"))
    if _v != "f7":
        _dm = dataclasses.replace(_cfg, gamma_in_act=True, padding="same", skipinit=True, conv3_gain=1.0)
        register_model(f"dm_nfnet_{_v}", "nfnet", _dm, NormFreeNet, counterparts=_timm(f"dm_nfnet_{_v}"))

#: NF-ResNet-50 as in the NF-ResNet paper and DeepMind's code: 7×7 stem + max pool, ResNet-50 widths, no SE, ReLU,
#: γ on the activations and a strided 1×1 transition shortcut, so every block's variance follows the α/β bookkeeping.
#: timm's nf_resnet50 (whose weights exist) differs only in these two fields; ``from_timm`` builds that form.
_NF_RESNET = NFNetConfig(
    depths=(3, 4, 6, 3),
    channels=(256, 512, 1024, 2048),
    stem="7x7_pool",
    stem_chs=64,
    bottle_ratio=0.25,
    group_size=None,
    extra_conv=False,
    se_ratio=None,
    final_chs=0,
    act_layer="relu",
    gamma_in_act=True,
    pool_shortcut=False,
    conv3_gain=1.0,
    train_res=256,
    test_res=288,
    drop_path_rate=0.1,
    published=Published(None, 25.6, 4.1, "NF-ResNet paper: matches BN ResNet-50 accuracy"),
)
register_model(
    "nf_resnet50", "nf_resnet", _NF_RESNET, NormFreeNet, counterparts=_timm("nf_resnet50", **_TIMM_NF_RESNET)
)


_TINY = dict(depths=(1, 2, 1, 1), channels=(16, 32, 32, 64), train_res=64, test_res=64, published=None, recipe=None)
_test_nfnet = dataclasses.replace(get_entry("dm_nfnet_f0").config, stem_chs=16, group_size=8, final_chs=64, **_TINY)
register_model("test_nfnet", "nfnet", _test_nfnet, NormFreeNet, tiny=True, counterparts=_timm(None))
register_model(
    "test_nf_resnet",
    "nf_resnet",
    dataclasses.replace(_NF_RESNET, stem_chs=8, drop_path_rate=0.0, **_TINY),
    NormFreeNet,
    tiny=True,
    counterparts=_timm(None, **_TIMM_NF_RESNET),
)

"""ConvNeXt (Liu et al., 2022, "A ConvNet for the 2020s"): hierarchical and isotropic variants.

Block layout, chosen per width by measurement (``benchmarks/convnext_layout.py``, ``results/bench/convnext_layout.csv``;
2-core CPU, 224 px, eval at batch 16 and a training step at batch 8, channels_last and contiguous input): LayerNorm
and the MLP run channels-last, as ``nn.LayerNorm`` + ``nn.Linear`` on (N, H, W, C), except where LayerNorm over
channels + 1×1 convs on (N, C, H, W) (``conv_mlp``, the same function) measured faster: ConvNeXt-femto, whose eval
was 4–8% faster that way in two runs on an AMX Xeon (training within ±4%). At atto, nano and tiny the two were
within ±2% in eval and the linear layout 3–12% faster in training (an earlier AMD run: tiny 8.5% and 19%). timm
checkpoints in either layout load into either: a 1×1 conv weight is the linear one reshaped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ModelConfig, Published, Recipe
from ..layers import DropPath, LayerNorm2d, LayerScale, Mlp
from ..registry import register_model
from ..utils.keymap import Counterpart, Pairs, tensor_owners
from .base import ClassifierHead, ConvNet, FeatureInfo

__all__ = ["CONVNEXT_RECIPE", "ConvNeXt", "ConvNeXtBlock", "ConvNeXtConfig", "ConvNeXtStage"]


class ConvNeXtBlock(nn.Module):
    """depthwise 7×7 → LayerNorm → Linear C→4C → GELU → Linear 4C→C → layer scale → drop path, + input (Fig. 4).

    ``conv_mlp``: the same function on (N, C, H, W) — LayerNorm over channels and 1×1 convs, no permutes — the
    layout that is faster at small widths (the module docstring)."""

    def __init__(
        self,
        dim: int,
        *,
        kernel_size: int = 7,
        mlp_ratio: int = 4,
        ls_init: float | None = 1e-6,
        drop_path_rate: float = 0.0,
        conv_mlp: bool = False,
    ) -> None:
        super().__init__()
        self.conv_mlp = conv_mlp
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6) if conv_mlp else nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_ratio * dim, act_layer="gelu", conv=conv_mlp)
        self.ls = LayerScale(dim, ls_init, dim=1 if conv_mlp else -1) if ls_init else nn.Identity()
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_dw(x)  # spatial mixing, per channel
        if self.conv_mlp:
            x = self.ls(self.mlp(self.norm(x)))  # channel mixing: one norm, one activation
        else:
            x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
            x = self.ls(self.mlp(self.norm(x))).permute(0, 3, 1, 2)  # the same, channels-last; back to (N, C, H, W)
        x = self.drop_path(x)
        x += shortcut  # in place: the branch output is not needed for the backward pass
        return x


class ConvNeXtStage(nn.Module):
    """Separate downsampling (LayerNorm → 2×2/2 conv, §2.6) where the width or resolution changes, then blocks."""

    def __init__(
        self, in_chs: int, out_chs: int, depth: int, stride: int, drop_path_rates: list[float], **block_kwargs
    ) -> None:
        super().__init__()
        if stride > 1 or in_chs != out_chs:
            self.downsample = nn.Sequential(LayerNorm2d(in_chs, eps=1e-6), nn.Conv2d(in_chs, out_chs, stride, stride))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(
            *(ConvNeXtBlock(out_chs, drop_path_rate=drop_path_rates[i], **block_kwargs) for i in range(depth))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


@dataclass(frozen=True, kw_only=True)
class ConvNeXtConfig(ModelConfig):
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (96, 192, 384, 768)
    patch_size: int = 4  # the "patchify" stem: a patch_size × patch_size conv with that stride
    stem_norm: bool = True  # LayerNorm after the stem (hierarchical); the isotropic models have none
    kernel_size: int = 7
    ls_init: float | None = 1e-6  # layer scale; None turns it off (isotropic S/B)
    head_init_scale: float = 1.0  # 0.001 for fine-tuning, per the paper's Table 6
    conv_mlp: bool = False  # the block's layout, chosen per width by measurement (the module docstring)

    def stage_rows(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = [
            {
                "stage": "stem",
                "op": f"{self.patch_size}x{self.patch_size}/{self.patch_size} patchify",
                "out": self.dims[0],
            }
        ]
        for i, (d, c) in enumerate(zip(self.depths, self.dims, strict=True)):
            op = f"ConvNeXt d{self.kernel_size}x{self.kernel_size}"
            rows.append({"stage": i, "op": op, "repeats": d, "stride": 2 if i else 1, "out": c})
        return rows


class ConvNeXt(ConvNet):
    """Patchify stem → stages of ConvNeXt blocks with separate downsampling → pool → LayerNorm → FC."""

    def __init__(self, cfg: ConvNeXtConfig, *, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__(num_classes, in_chans)
        if len(cfg.depths) != len(cfg.dims):
            raise ValueError(f"depths {cfg.depths} and dims {cfg.dims} must have the same length")
        self.cfg = cfg
        p = cfg.patch_size
        stem = [nn.Conv2d(in_chans, cfg.dims[0], p, p)]
        if cfg.stem_norm:
            stem.append(LayerNorm2d(cfg.dims[0], eps=1e-6))
        self.stem = nn.Sequential(*stem)
        n = sum(cfg.depths)
        rates = [cfg.drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # linspace(0, rate, n), as the official code
        stages, chs, start = [], cfg.dims[0], 0
        self.feature_info = []
        for i, (depth, dim) in enumerate(zip(cfg.depths, cfg.dims, strict=True)):
            stride = 1 if i == 0 else 2
            stages.append(
                ConvNeXtStage(
                    chs,
                    dim,
                    depth,
                    stride,
                    rates[start : start + depth],
                    kernel_size=cfg.kernel_size,
                    ls_init=cfg.ls_init,
                    conv_mlp=cfg.conv_mlp,
                )
            )
            chs, start = dim, start + depth
            self.feature_info.append(FeatureInfo(f"stages.{i}", dim, p * 2**i))
        self.stages = nn.Sequential(*stages)
        self.final = nn.Identity()
        self.head = ClassifierHead(chs, num_classes, cfg.drop_rate, norm=nn.LayerNorm(chs, eps=1e-6))
        self.apply(_init_weights)
        if isinstance(self.head.fc, nn.Linear):
            self.init_classifier(self.head.fc)

    def init_classifier(self, fc: nn.Linear) -> None:
        """Truncated normal, then scaled by ``head_init_scale`` (0.001 for fine-tuning, paper Table 6)."""
        _init_weights(fc)
        with torch.no_grad():
            fc.weight.mul_(self.cfg.head_init_scale)
            fc.bias.mul_(self.cfg.head_init_scale)


def _init_weights(m: nn.Module) -> None:
    """Official init: truncated normal (std 0.02) for conv and linear weights, zero biases."""
    if isinstance(m, nn.Conv2d | nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


#: paper Appendix A.1 / official main.py (ImageNet-1K, 300 epochs)
CONVNEXT_RECIPE = Recipe(
    optimizer="adamw",
    lr=4e-3,
    batch_size=4096,
    weight_decay=0.05,
    epochs=300,
    warmup_epochs=20,
    schedule="cosine",
    min_lr=1e-6,
    ema_decay=0.9999,
    label_smoothing=0.1,
    mixup=0.8,
    cutmix=1.0,
    randaugment="rand-m9-mstd0.5-inc1",
    random_erasing=0.25,
    source="ConvNeXt paper Appendix A.1; facebookresearch/ConvNeXt main.py and TRAINING.md",
)
_ISO_RECIPE = dataclasses.replace(CONVNEXT_RECIPE, warmup_epochs=50, source="ConvNeXt paper A.1 (isotropic)")

_T1 = "ConvNeXt paper Table 1, ImageNet-1K at 224"
_TIMM = "timm-only size: no paper numbers"
_DIMS = {
    "atto": 40,
    "femto": 48,
    "pico": 64,
    "nano": 80,
    "tiny": 96,
    "small": 96,
    "base": 128,
    "large": 192,
    "xlarge": 256,
}
_HIER = {  # name: (depths, drop_path, train/test res, published)
    "atto": ((2, 2, 6, 2), 0.1, (224, 288), None),
    "femto": ((2, 2, 6, 2), 0.1, (224, 288), None),
    "pico": ((2, 2, 6, 2), 0.1, (224, 288), None),
    "nano": ((2, 2, 8, 2), 0.1, (224, 288), None),
    "tiny": ((3, 3, 9, 3), 0.1, (224, 224), Published(82.1, 28.6, 4.5, _T1)),
    "small": ((3, 3, 27, 3), 0.4, (224, 224), Published(83.1, 50.0, 8.7, _T1)),
    "base": ((3, 3, 27, 3), 0.5, (224, 224), Published(83.8, 89.0, 15.4, _T1)),
    "large": ((3, 3, 27, 3), 0.5, (224, 224), Published(84.3, 198.0, 34.4, _T1)),
    "xlarge": ((3, 3, 27, 3), 0.5, (224, 224), Published(87.0, 350.0, 60.9, "paper Table 1, ImageNet-22K pretrained")),
}


def timm_keys(model: ConvNeXt) -> Pairs:
    """timm's names are ours, but for layer scale: timm keeps ``gamma`` on the block itself."""
    for name in tensor_owners(model):
        yield name, name.removesuffix(".ls")


_CONV_MLP = {"femto"}  # the widths where the (N, C, H, W) layout measured faster (module docstring)

for _name, (_depths, _dpr, (_train, _test), _pub) in _HIER.items():
    _d = _DIMS[_name]
    register_model(
        f"convnext_{_name}",
        "convnext",
        ConvNeXtConfig(
            depths=_depths,
            dims=(_d, 2 * _d, 4 * _d, 8 * _d),
            drop_path_rate=_dpr,
            train_res=_train,
            test_res=_test,
            published=_pub,
            recipe=CONVNEXT_RECIPE,
            conv_mlp=_name in _CONV_MLP,
        ),
        ConvNeXt,
        counterparts={"timm": Counterpart(f"convnext_{_name}", timm_keys)},
    )

_T2 = "ConvNeXt paper Table 2 (the official README lists iso-S at 78.7)"
_ISO = {  # name: (depth, dim, drop_path, layer scale, published) — paper Appendix A.1
    "small": (18, 384, 0.1, None, Published(79.7, 22.0, 4.3, _T2)),
    "base": (18, 768, 0.2, None, Published(82.0, 87.0, 16.9, "ConvNeXt paper Table 2")),
    "large": (36, 1024, 0.5, 1e-6, Published(82.6, 306.0, 59.7, "ConvNeXt paper Table 2")),
}
for _name, (_depth, _dim, _dpr, _ls, _pub) in _ISO.items():
    register_model(
        f"convnext_isotropic_{_name}",
        "convnext_isotropic",
        ConvNeXtConfig(
            depths=(_depth,),
            dims=(_dim,),
            patch_size=16,
            stem_norm=False,
            ls_init=_ls,
            drop_path_rate=_dpr,
            published=_pub,
            recipe=_ISO_RECIPE,
        ),
        ConvNeXt,
        counterparts={"timm": Counterpart(None, timm_keys)},  # timm has no isotropic ConvNeXt
    )

register_model(
    "test_convnext",
    "convnext",
    ConvNeXtConfig(depths=(1, 2, 1, 1), dims=(8, 16, 24, 32), train_res=64, test_res=64, drop_path_rate=0.1),
    ConvNeXt,
    tiny=True,
    counterparts={"timm": Counterpart(None, timm_keys)},
)
register_model(
    "test_convnext_isotropic",
    "convnext_isotropic",
    ConvNeXtConfig(depths=(3,), dims=(16,), patch_size=16, stem_norm=False, ls_init=None, train_res=64, test_res=64),
    ConvNeXt,
    tiny=True,
)

"""The ConvNeXt paper's modernization study (§2, Table 10) as runnable models: ResNet-50 → ConvNeXt-T.

Each step is the previous step's config with one field changed, so the sequence reads like the paper. Steps 0–15
are :class:`ResNet` configs (its fields cover the stage ratio, the patchify stem, depthwise groups, the inverted
bottleneck and its micro design); the last step is ConvNeXt-T itself. Kernel sizes 5, 9 and 11 are the paper's side
experiments: the path continues from kernel 7.

Decisions where the paper is silent: the training recipe of step 1 brings layer scale (1e-6) and stochastic depth
(0.1), which the paper's recipe table lists; the patchify stem is a single 4×4/4 conv without norm or activation until
the last step adds its LayerNorm ("one after the stem", §2.6); the inverted bottleneck expands to 4× the block's
output width; until the last step, downsampling stays in the first block of a stage (strided depthwise conv and a
strided 1×1 projection with a norm on the shortcut), as in ResNet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import Published
from ..registry import get_entry, register_model
from .convnext import CONVNEXT_RECIPE, ConvNeXt
from .resnet import RESNET_RECIPE, ResNet, ResNetConfig

__all__ = ["ROADMAP", "RoadmapStep"]


@dataclass(frozen=True)
class RoadmapStep:
    name: str  # the registered model
    change: str  # the paper's row label
    top1: float  # ImageNet-1K top-1, paper Table 10 (mean of 3 seeds)
    gflops: float  # paper Table 10
    on_path: bool = True  # False: a side experiment the path does not continue from


_PAPER = "ConvNeXt paper Table 10"
_steps: list[tuple[RoadmapStep, object, type]] = []


def _add(slug: str, change: str, top1: float, gflops: float, cfg, cls=ResNet, on_path: bool = True):
    step = RoadmapStep(f"roadmap_{len(_steps):02d}_{slug}", change, top1, gflops, on_path)
    cfg = replace(cfg, published=Published(top1, None, gflops, _PAPER))
    _steps.append((step, cfg, cls))
    return cfg


s = _add("resnet50", "ResNet-50 (PyTorch)", 76.13, 4.09, ResNetConfig(recipe=RESNET_RECIPE))
s = _add(
    "recipe",
    "ResNet-50 (enhanced recipe)",
    78.82,
    4.09,
    replace(s, recipe=CONVNEXT_RECIPE, layer_scale=1e-6, zero_init_last=False, drop_path_rate=0.1),
)
s = _add("stage_ratio", "stage ratio", 79.36, 4.53, replace(s, depths=(3, 3, 9, 3)))
s = _add("patchify", '"patchify" stem', 79.51, 4.42, replace(s, stem="patchify"))
s = _add("depthwise", "depthwise conv", 78.28, 2.35, replace(s, groups=-1))
s = _add("width", "increase width", 80.50, 5.27, replace(s, width=96))
s = _add("inverted", "inverting dimensions", 80.64, 4.64, replace(s, block="inverted", groups=1))
s = _add("dw_up", "move up depthwise conv", 79.92, 4.07, replace(s, dw_first=True))
_add("k5", "kernel size → 5", 80.35, 4.10, replace(s, kernel_size=5), on_path=False)
k7 = _add("k7", "kernel size → 7", 80.57, 4.15, replace(s, kernel_size=7))
_add("k9", "kernel size → 9", 80.57, 4.21, replace(s, kernel_size=9), on_path=False)
_add("k11", "kernel size → 11", 80.47, 4.29, replace(s, kernel_size=11), on_path=False)
s = _add("gelu", "ReLU → GELU", 80.62, 4.15, replace(k7, act_layer="gelu"))
s = _add("fewer_acts", "fewer activations", 81.27, 4.15, replace(s, one_act=True))
s = _add("fewer_norms", "fewer norms", 81.41, 4.15, replace(s, one_norm=True))
s = _add("layernorm", "BN → LN", 81.47, 4.46, replace(s, norm_layer="layernorm2d"))
_add("sep_downsample", "separate d.s. conv (ConvNeXt-T)", 81.97, 4.49, get_entry("convnext_tiny").config, ConvNeXt)

#: the study, in the paper's order
ROADMAP: tuple[RoadmapStep, ...] = tuple(step for step, _, _ in _steps)
for _step, _cfg, _cls in _steps:
    register_model(_step.name, "convnext_roadmap", _cfg, _cls)

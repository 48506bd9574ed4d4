"""The residual blocks of ResNet (He et al., 2016): basic (two 3×3) and bottleneck (1×1 → k×k → 1×1).

Torchvision's "ResNet v1.5" convention: the stride sits on the bottleneck's k×k conv. The bottleneck's ``groups``
gives ResNeXt's grouped conv (``groups=-1``: depthwise, step "ResNeXt-ify" of the ConvNeXt study) and
``layer_scale`` a per-channel scale of the branch (part of the ConvNeXt training recipe).
"""

from __future__ import annotations

import torch
from torch import nn

from .activations import ActLayer, create_act
from .conv_norm_act import ConvNormAct
from .drop import DropPath
from .norm import NormLayer
from .residual import LayerScale

__all__ = ["BasicBlock", "Bottleneck", "InvertedBottleneck"]


def _shortcut(in_chs: int, out_chs: int, stride: int, norm_layer: NormLayer) -> nn.Module:
    """Identity, or a strided 1×1 projection + norm where the shape changes (ResNet option B)."""
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    return ConvNormAct(in_chs, out_chs, 1, stride, norm_layer=norm_layer, act_layer=None)


class _ResidualBlock(nn.Module):
    """``act(shortcut(x) + drop_path(ls(branch(x))))``: the post-activation residual of ResNet."""

    branch: nn.Sequential

    def _finish(self, out_chs: int, stride: int, in_chs: int, norm_layer, act_layer, layer_scale, drop_path_rate):
        self.ls = LayerScale(out_chs, layer_scale, dim=1) if layer_scale else nn.Identity()
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.shortcut = _shortcut(in_chs, out_chs, stride, norm_layer)
        self.act = create_act(act_layer, inplace=True)

    def zero_init_last(self) -> None:
        """Start the block as an identity: the last norm's scale at zero (Goyal et al., 2017)."""
        last_norm = self.branch[-1].bn
        if isinstance(last_norm, nn.BatchNorm2d):
            nn.init.zeros_(last_norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop_path(self.ls(self.branch(x)))
        out += self.shortcut(x)  # in place: the branch output is not needed for the backward pass
        return self.act(out)


class BasicBlock(_ResidualBlock):
    """3×3 (stride) → 3×3, each conv → norm, act between and after the add (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        width: int,
        stride: int = 1,
        *,
        norm_layer: NormLayer = "batchnorm",
        act_layer: ActLayer = "relu",
        layer_scale: float | None = None,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            ConvNormAct(in_chs, width, 3, stride, norm_layer=norm_layer, act_layer=act_layer),
            ConvNormAct(width, width, 3, norm_layer=norm_layer, act_layer=None),
        )
        self._finish(width, stride, in_chs, norm_layer, act_layer, layer_scale, drop_path_rate)


class Bottleneck(_ResidualBlock):
    """1×1 reduce → k×k (stride, groups) → 1×1 expand ×4, each conv → norm; act between and after the add."""

    expansion = 4

    def __init__(
        self,
        in_chs: int,
        width: int,
        stride: int = 1,
        *,
        kernel_size: int = 3,
        groups: int = 1,
        norm_layer: NormLayer = "batchnorm",
        act_layer: ActLayer = "relu",
        layer_scale: float | None = None,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        out_chs = width * self.expansion
        cna = dict(norm_layer=norm_layer)
        self.branch = nn.Sequential(
            ConvNormAct(in_chs, width, 1, act_layer=act_layer, **cna),
            ConvNormAct(width, width, kernel_size, stride, groups=groups, act_layer=act_layer, **cna),
            ConvNormAct(width, out_chs, 1, act_layer=None, **cna),
        )
        self._finish(out_chs, stride, in_chs, norm_layer, act_layer, layer_scale, drop_path_rate)


class InvertedBottleneck(_ResidualBlock):
    """The ConvNeXt study's intermediate blocks (paper §2.4–2.6, Fig. 3): an inverted bottleneck, C → 4C → C.

    ``dw_first=False`` (Fig. 3b): 1×1 expand → k×k depthwise (stride) → 1×1 project.
    ``dw_first=True`` (Fig. 3c, "move up depthwise conv"): k×k depthwise (stride) → 1×1 expand → 1×1 project.
    With every norm and activation (ResNet style) each conv is followed by a norm, each but the last by an act, and an
    act follows the add. ``one_act`` keeps only the act between the two 1×1 convs ("fewer activations");
    ``one_norm`` only the norm after the depthwise conv ("fewer norms"). A conv without a norm gets a bias.
    """

    expansion = 1

    def __init__(
        self,
        in_chs: int,
        width: int,
        stride: int = 1,
        *,
        kernel_size: int = 3,
        dw_first: bool = False,
        one_act: bool = False,
        one_norm: bool = False,
        norm_layer: NormLayer = "batchnorm",
        act_layer: ActLayer = "relu",
        layer_scale: float | None = None,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = 4 * width
        some_act, some_norm = (None if one_act else act_layer), (None if one_norm else norm_layer)
        if dw_first:
            self.branch = nn.Sequential(
                ConvNormAct(
                    in_chs, in_chs, kernel_size, stride, groups=in_chs, norm_layer=norm_layer, act_layer=some_act
                ),
                ConvNormAct(in_chs, hidden, 1, norm_layer=some_norm, act_layer=act_layer),
                ConvNormAct(hidden, width, 1, norm_layer=some_norm, act_layer=None),
            )
        else:
            self.branch = nn.Sequential(
                ConvNormAct(in_chs, hidden, 1, norm_layer=norm_layer, act_layer=act_layer),
                ConvNormAct(
                    hidden, hidden, kernel_size, stride, groups=hidden, norm_layer=norm_layer, act_layer=act_layer
                ),
                ConvNormAct(hidden, width, 1, norm_layer=norm_layer, act_layer=None),
            )
        self._finish(width, stride, in_chs, norm_layer, None if one_act else act_layer, layer_scale, drop_path_rate)

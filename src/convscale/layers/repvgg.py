"""The RepVGG block (Ding et al., 2021): three branches to train, one 3×3 conv to deploy.

Training: ``act(BN(conv3×3(x)) + BN(conv1×1(x)) + BN(x))``, the identity branch only where the shape is kept. Every
branch is linear in ``x`` until the activation, so :meth:`RepVGGBlock.reparameterize` folds each BN into its branch,
pads the 1×1 kernel and the identity to 3×3, and sums them into a single 3×3 conv with bias (docs/papers.md §5.1).
"""

from __future__ import annotations

import torch
from torch import nn

from .activations import ActLayer, create_act
from .conv_norm_act import ConvNormAct
from .fold import bn_scale_shift, fold_bn, folded_conv, identity_kernel, pad_kernel

__all__ = ["RepVGGBlock"]


class RepVGGBlock(nn.Module):
    """``conv_kxk`` (3×3 + BN) + ``conv_1x1`` (1×1 + BN) + ``identity`` (BN) → ``act``; after
    :meth:`reparameterize`, ``reparam`` (3×3 with bias) → ``act``."""

    def __init__(
        self, in_chs: int, out_chs: int, stride: int = 1, *, groups: int = 1, act_layer: ActLayer = "relu"
    ) -> None:
        super().__init__()
        self.in_chs, self.out_chs, self.groups = in_chs, out_chs, groups
        self.conv_kxk = ConvNormAct(in_chs, out_chs, 3, stride, groups=groups, act_layer=None)
        self.conv_1x1 = ConvNormAct(in_chs, out_chs, 1, stride, groups=groups, act_layer=None)
        self.identity = nn.BatchNorm2d(out_chs) if in_chs == out_chs and stride == 1 else None
        self.reparam: nn.Conv2d | None = None
        self.act = create_act(act_layer, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam is not None:
            return self.act(self.reparam(x))
        out = self.conv_1x1(x) + self.conv_kxk(x)
        if self.identity is not None:
            out += self.identity(x)
        return self.act(out)

    @torch.no_grad()
    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 3×3 kernel and bias that compute the three branches' sum (eval-mode BN)."""
        k3, b3 = fold_bn(self.conv_kxk.conv.weight, None, self.conv_kxk.bn)
        k1, b1 = fold_bn(self.conv_1x1.conv.weight, None, self.conv_1x1.bn)
        kernel, bias = k3 + pad_kernel(k1, 3), b3 + b1
        if self.identity is not None:
            t, shift = bn_scale_shift(self.identity)
            kernel = kernel + identity_kernel(self.out_chs, self.groups, 3, k3) * t.reshape(-1, 1, 1, 1)
            bias = bias + shift
        return kernel, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by one 3×3 conv with bias (in place; the block must be trained, i.e. its BN
        statistics final). Idempotent."""
        if self.reparam is not None:
            return
        kernel, bias = self.equivalent_kernel_bias()
        self.reparam = folded_conv(self.conv_kxk.conv, kernel, bias)
        del self.conv_kxk, self.conv_1x1, self.identity
        self.conv_kxk = self.conv_1x1 = self.identity = None

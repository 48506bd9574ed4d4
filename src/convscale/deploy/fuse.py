"""One transform from a trained model to its fastest equivalent inference form, for every family.

``fuse(model)`` returns a copy in which

- RepVGG blocks are re-parameterized into single 3×3 convs (``reparameterize()`` on any block that has one);
- every batch norm is folded into the conv before it (all of them sit in a ``ConvNormAct``);
- scaled weight-standardized convs (NFNets) become plain convs holding their standardized weight, so the
  standardization is not recomputed on every call;
- dropout and drop path (no-ops in eval mode) become identities, and identities are dropped from plain Sequentials;
- parameters are in channels_last.

The result computes what the eval-mode original computes (within float rounding: 1e-5 of the output scale in fp32).
Folding reads the BN running statistics, so only a model in eval mode is accepted. ``fuse(fuse(m))`` equals
``fuse(m)``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..layers.conv_norm_act import ConvNormAct
from ..layers.drop import DropPath
from ..layers.fold import fold_bn, folded_conv
from ..layers.std_conv import ScaledStdConv2d

__all__ = ["fuse"]


@torch.no_grad()
def fuse(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) in its inference form; see the module docstring."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"fuse expects an nn.Module, got {type(model).__name__}")
    if model.training:
        raise ValueError(
            "fuse needs a model in eval mode (call model.eval() first): it folds the BN running statistics"
        )
    fused = copy.deepcopy(model)
    for module in list(fused.modules()):
        if callable(getattr(module, "reparameterize", None)):
            module.reparameterize()
    for module in list(fused.modules()):
        if isinstance(module, ConvNormAct) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv = folded_conv(module.conv, *fold_bn(module.conv.weight, module.conv.bias, module.bn))
            module.bn = nn.Identity()
    _replace(fused)
    return fused.to(memory_format=torch.channels_last).eval()


def _replace(parent: nn.Module) -> None:
    """Plain convs for weight-standardized ones, identities for dropout and drop path, and no identities in
    plain Sequentials; recursively."""
    for name, child in list(parent.named_children()):
        if isinstance(child, ScaledStdConv2d):
            setattr(parent, name, folded_conv(child, child.standardized_weight(), child.bias))
        elif isinstance(child, nn.Dropout | DropPath):
            setattr(parent, name, nn.Identity())
        else:
            _replace(child)
    if type(parent) is nn.Sequential and any(isinstance(c, nn.Identity) for c in parent):
        kept = [(n, c) for n, c in parent.named_children() if not isinstance(c, nn.Identity)]
        for n, _ in list(parent.named_children()):
            delattr(parent, n)
        for n, c in kept:
            parent.add_module(n, c)

"""Parameter and multiply-add counts, taken on the ``meta`` device so that even B7 or XL cost no memory or time."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["count_macs", "count_params"]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, resolution: int | tuple[int, int], in_chans: int | None = None) -> int:
    """Multiply-adds of one image (the papers' "FLOPs"): convolutions and linear layers, as fvcore/timm count them.

    Build the model on the ``meta`` device (``with torch.device("meta"): ...``) to count without computing.
    """
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    in_chans = in_chans or getattr(model, "in_chans", 3)
    total = 0

    def conv_hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m: nn.Linear, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.empty(1, in_chans, h, w, device=device))
    finally:
        for h_ in handles:
            h_.remove()
        model.train(was_training)
    return total

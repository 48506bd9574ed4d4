"""``features_only=True``: a backbone that returns feature maps at several strides (for detection, segmentation)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import ConvNet, FeatureInfo, check_input

__all__ = ["FeatureExtractor"]


class FeatureExtractor(nn.Module):
    """A model's trunk up to its deepest requested feature; ``forward`` returns the list of feature maps.

    The modules keep their names, so the backbone loads the classifier's checkpoint (minus the head).
    """

    def __init__(self, model: ConvNet, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        available = model.feature_info
        n = len(available)
        out_indices = tuple(range(n) if out_indices is None else out_indices)
        if not out_indices or any(not isinstance(i, int) or not -n <= i < n for i in out_indices):
            raise ValueError(f"out_indices must be a non-empty list of integers in [0, {n}), got {out_indices}")
        self.feature_info: list[FeatureInfo] = [available[i] for i in sorted({i % n for i in out_indices})]
        self.in_chans = model.in_chans
        taps = {f.module for f in self.feature_info}
        self._trunk: list[str] = []
        for name, _ in model.trunk():
            self._trunk.append(name)
            if taps <= set(self._trunk):
                break
        self._taps = taps
        kept_stages = [int(n.split(".")[1]) for n in self._trunk if n.startswith("stages.")]
        for name, child in model.named_children():
            if name == "stages":
                child = nn.Sequential(*list(child)[: max(kept_stages, default=-1) + 1])
            if name not in ("final", "head"):
                self.add_module(name, child)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_input(x, self.in_chans)
        features = []
        for name in self._trunk:
            x = self.get_submodule(name)(x)
            if name in self._taps:
                features.append(x)
        return features

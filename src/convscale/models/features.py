"""``features_only=True``: a backbone that returns feature maps at several strides (for detection, segmentation)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import ConvNet, FeatureInfo, check_input

__all__ = ["FeatureExtractor"]


class FeatureExtractor(nn.Module):
    """The stem and the stages of a model up to its deepest requested feature; ``forward`` returns a list of maps."""

    def __init__(self, model: ConvNet, out_indices: Sequence[int] | None = None) -> None:
        super().__init__()
        available = model.feature_info
        if out_indices is None:
            out_indices = range(len(available))
        out_indices = tuple(out_indices)
        n = len(available)
        if not out_indices or any(not isinstance(i, int) or not -n <= i < n for i in out_indices):
            raise ValueError(f"out_indices must be a non-empty list of integers in [0, {n}), got {out_indices}")
        self.feature_info: list[FeatureInfo] = [available[i] for i in sorted({i % n for i in out_indices})]
        self.in_chans = model.in_chans
        self._taps = {f.stage for f in self.feature_info}
        last = max(self._taps)
        self.stem = model.stem
        self.stages = nn.Sequential(*list(model.stages)[: last + 1])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_input(x, self.in_chans)
        x = self.stem(x)
        features = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self._taps:
                features.append(x)
        return features

"""What every convscale model has in common: stem → stages → head, and the API built on it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..layers.activations import ActLayer, create_act

__all__ = ["ClassifierHead", "ConvNet", "FeatureInfo", "check_input", "run_checkpointed", "stage_feature_info"]


@dataclass(frozen=True)
class FeatureInfo:
    """A feature map a backbone exposes: the trunk module that produces it, its channels and its stride."""

    module: str  # a name from ConvNet.trunk(), e.g. "stages.2"
    num_chs: int
    reduction: int


def stage_feature_info(
    stem_stride: int, strides: Sequence[int], channels: Sequence[int], stem_chs: int = 0
) -> list[FeatureInfo]:
    """One feature per output stride: the last stage before each stride change, and the last stage.

    A stem that already reduces (stride 2) yields the stride-2 map from the first stage that keeps its resolution,
    or, when the first stage reduces again (MobileNetV3-Small), from the stem itself (``stem_chs`` wide).
    """
    info: list[FeatureInfo] = []
    if stem_stride > 1 and strides[0] > 1 and stem_chs:
        info.append(FeatureInfo("stem", stem_chs, stem_stride))
    reduction = stem_stride
    for i, (stride, chs) in enumerate(zip(strides, channels, strict=True)):
        reduction *= stride
        last_at_this_stride = i + 1 == len(strides) or strides[i + 1] > 1
        if last_at_this_stride:
            info.append(FeatureInfo(f"stages.{i}", chs, reduction))
    return info


def run_checkpointed(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``module`` block by block, recomputing each block's activations in the backward pass."""
    blocks = getattr(module, "blocks", module)  # a stage with a downsample and its blocks, or a Sequential of blocks
    if blocks is not module:
        x = module.downsample(x)
    for block in blocks.children() if isinstance(blocks, nn.Sequential) else (blocks,):
        x = checkpoint(block, x, use_reentrant=False)
    return x


def check_input(x: torch.Tensor, in_chans: int) -> None:
    """Raise a ValueError that says what was expected, instead of a shape error deep inside a conv."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of shape (N, {in_chans}, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"expected a 4-D input (N, {in_chans}, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != in_chans:
        raise ValueError(f"expected {in_chans} input channels (N, {in_chans}, H, W), got shape {tuple(x.shape)}")


class ClassifierHead(nn.Module):
    """Global average pool → (norm) → (hidden linear → act) → dropout → ``fc``. ``num_classes=0`` leaves the pooled
    features. The hidden layer is MobileNetV3's and GhostNet's 1×1 conv after pooling (a linear on pooled features).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        drop_rate: float = 0.0,
        norm: nn.Module | None = None,
        *,
        hidden: int = 0,
        hidden_act: ActLayer = None,
        hidden_bias: bool = True,
    ):
        super().__init__()
        self.norm = norm if norm is not None else nn.Identity()
        self.hidden = nn.Linear(in_features, hidden, bias=hidden_bias) if hidden else nn.Identity()
        self.hidden_act = create_act(hidden_act, inplace=True) if hidden else nn.Identity()
        self.in_features = hidden or in_features  # what the classifier sees
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(self.in_features, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))  # (N, C, H, W) -> (N, C)
        x = self.drop(self.hidden_act(self.hidden(self.norm(x))))
        return x if pre_logits else self.fc(x)


class ConvNet(nn.Module):
    """Base of every model: ``stem`` → ``stages`` → ``final`` (a last conv, or nothing) → ``head``.

    Subclasses build those four modules and set ``feature_info``; the common API below then works for all of them.
    """

    stem: nn.Module
    stages: nn.Sequential
    final: nn.Module
    head: ClassifierHead
    feature_info: list[FeatureInfo]

    def __init__(self, num_classes: int, in_chans: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.grad_checkpointing = False

    @property
    def num_features(self) -> int:
        """Width of the pooled features the classifier sees."""
        return self.head.in_features

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of storing them (less memory)."""
        self.grad_checkpointing = enable

    def trunk(self) -> Iterator[tuple[str, nn.Module]]:
        """The modules from the input to the last stage, in order, with their names; features are tapped here."""
        yield "stem", self.stem
        if hasattr(self, "stem_pool"):  # ResNet-style stems: the stride-2 feature is tapped before the pool
            yield "stem_pool", self.stem_pool
        yield from self.trunk_stages()

    def trunk_stages(self) -> Iterator[tuple[str, nn.Module]]:
        for i, stage in enumerate(self.stages):
            yield f"stages.{i}", stage

    def forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and stages: (N, in_chans, H, W) -> the last stage's output."""
        checkpointing = self.grad_checkpointing and torch.is_grad_enabled()
        for name, module in self.trunk():
            x = run_checkpointed(module, x) if checkpointing and name.startswith("stages.") else module(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> the last feature map, before pooling."""
        check_input(x, self.in_chans)
        return self.final(self.forward_trunk(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool and classify a feature map; ``pre_logits=True`` returns the pooled features."""
        return self.head(x, pre_logits=pre_logits)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialized one (``num_classes=0``: no classifier)."""
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an integer >= 0, got {num_classes!r}")
        self.head.reset(num_classes)
        self.num_classes = num_classes
        if isinstance(self.head.fc, nn.Linear):
            self.init_classifier(self.head.fc)

    def init_classifier(self, fc: nn.Linear) -> None:
        """The family's init of a classifier (at construction and after ``reset_classifier``); PyTorch's default
        unless a family overrides it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

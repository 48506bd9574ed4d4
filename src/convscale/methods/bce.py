"""Binary cross-entropy as the training loss, as in the "ResNet strikes back" recipes (Wightman, Touvron and Jégou,
2021) and timm's ``--bce-loss`` / ``--bce-target-thresh``: each class is its own yes/no question, so a mixed image
(mixup, CutMix) may answer yes to both of its classes instead of sharing one softmax.

For class-index labels the target is one-hot with label smoothing (``off = ε / C`` everywhere, ``1 − ε + off`` on the
label); soft targets (mixup's, which already hold the smoothing) are used as they are. With a target threshold τ every
target above τ becomes 1 and the others 0 (RSB's A1 and A2 use τ = 0.2 with mixup and CutMix, so both classes of a
mixed image count as present). The loss is the mean over images and classes of
``BCE(sigmoid(logit), target)``, computed in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..utils.checks import flag, number, optional, setting
from .base import Context, Hook, Loss, MethodConfig

if TYPE_CHECKING:
    from ..runs import TrainConfig

__all__ = ["BCE", "BCEHook", "bce_loss", "bce_targets"]


@dataclass(frozen=True)
class BCE(MethodConfig):
    """``cfg.bce``: whether the loss is binary cross-entropy, and its target threshold (None: targets as they are)."""

    enabled: bool = setting(
        False, flag, "binary cross-entropy instead of softmax cross-entropy (ResNet strikes back; timm's --bce-loss)",
        "bce_loss",
    )  # fmt: skip
    target_threshold: float | None = setting(
        None, optional(number(0, 1)), "BCE: targets above this become 1, the others 0 (RSB: 0.2)", "bce_target_thresh"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target_threshold is not None and not self.enabled:
            raise ValueError("config key 'bce_target_thresh': the threshold is BCE's; it needs --bce-loss")

    def check_with(self, cfg: TrainConfig) -> None:
        if self.enabled and cfg.distill.teacher is not None:
            raise ValueError("config key 'bce_loss': distillation brings its own loss; use --bce-loss or --teacher")

    def hook(self, cfg: TrainConfig, ctx: Context) -> Hook | None:
        return BCEHook(cfg.label_smoothing, self.target_threshold) if self.enabled else None


def bce_targets(labels: torch.Tensor, classes: int, smoothing: float = 0.0, threshold: float | None = None):
    """The per-class targets: class indices one-hot with ``smoothing`` (soft targets as they are), then binarized at
    ``threshold`` when one is given."""
    if labels.dim() == 1:
        off = smoothing / classes
        targets = torch.full((labels.shape[0], classes), off, device=labels.device, dtype=torch.float32)
        targets.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)
    else:
        targets = labels.float()
    return targets if threshold is None else targets.gt(threshold).float()


def bce_loss(smoothing: float = 0.0, threshold: float | None = None) -> Loss:
    """The step's loss in the ``(logits, images, labels)`` form."""

    def loss(logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        targets = bce_targets(labels, logits.shape[1], smoothing, threshold)
        return F.binary_cross_entropy_with_logits(logits.float(), targets)

    return loss


class BCEHook(Hook):
    """The run's loss replaced by :func:`bce_loss` (label smoothing applies to class-index labels only)."""

    def __init__(self, smoothing: float, threshold: float | None) -> None:
        self.smoothing, self.threshold = smoothing, threshold

    def describe(self) -> str:
        rule = f", targets above {self.threshold:g} -> 1" if self.threshold is not None else ""
        return f"binary cross-entropy loss (label smoothing {self.smoothing:g}{rule})"

    def loss(self, loss: Loss | None) -> Loss:
        return bce_loss(self.smoothing, self.threshold)

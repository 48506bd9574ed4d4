"""Fine-tuning's two methods, besides starting from published weights (``--pretrained``, read by
:mod:`convscale.runs.start`): layer-wise learning-rate decay and freezing.

- :func:`layer_ids` and :func:`layer_decay_scales` — layer-wise learning-rate decay (BEiT; ConvNeXt's fine-tuning,
  ``--layer-decay``): the stem is layer 0, every block of every stage the next layer, the final conv and the head the
  last (L + 1); a layer's learning rate is the base times ``decay ** (L + 1 - layer)``, so each earlier block gets
  the factor once more.
- :class:`FineTuneHook` — those factors for the optimizer's groups; a head-only warm-up (``--freeze-epochs N``: for
  the first N epochs only the classifier learns; the rest keeps its weights and its batch-norm statistics to the bit)
  and frozen batch-norm statistics for the whole run (``--freeze-bn``, for small batches).

Freezing is a learning rate of zero on the frozen parameters and eval mode on their normalization layers, not
``requires_grad=False``: the parameters stay in the optimizer, DistributedDataParallel and the compiled graph from
the first step, so unfreezing changes nothing but two numbers, and a resumed run is the same run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from ..utils.checks import flag, integer, number, optional, setting
from .base import Context, Hook, MethodConfig

if TYPE_CHECKING:
    from ..runs import TrainConfig

__all__ = ["CLASSIFIER", "FineTune", "FineTuneHook", "layer_decay_scales", "layer_ids"]

CLASSIFIER = "head.fc."  # the parameters a fine-tuning run replaces: they learn from the first step
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class FineTune(MethodConfig):
    """``cfg.finetune``: layer decay and freezing, for a run that starts from ``--pretrained`` weights."""

    layer_decay: float | None = setting(
        None,
        optional(number(0.01, 1)),
        "layer-wise lr decay: each earlier block's lr times this once more (0.8)",
        "layer_decay",
    )
    freeze_epochs: int = setting(
        0, integer(0, 100_000), "head-only warm-up: epochs in which only the classifier learns", "freeze_epochs"
    )
    freeze_bn: bool = setting(
        False, flag, "keep the pretrained batch-norm statistics frozen (small batches)", "freeze_bn"
    )

    def check_with(self, cfg: TrainConfig) -> None:
        if cfg.pretrained in (None, False):
            for key, value, off in (("layer_decay", self.layer_decay, None), ("freeze_epochs", self.freeze_epochs, 0)):
                if value != off:
                    raise ValueError(f"config key {key!r} is for fine-tuning: it needs --pretrained")
        if self.freeze_epochs > cfg.epochs:
            raise ValueError(f"config key 'freeze_epochs': {self.freeze_epochs} is more than the run's {cfg.epochs}")

    def hook(self, cfg: TrainConfig, ctx: Context) -> Hook | None:
        if not (self.layer_decay or self.freeze_epochs or self.freeze_bn):
            return None
        return FineTuneHook(ctx.model, self.layer_decay, self.freeze_epochs, self.freeze_bn)


def layer_ids(model: nn.Module) -> tuple[dict[str, int], int]:
    """(layer of each parameter name, L): stem 0, the blocks of the stages 1…L in order (a stage's downsampling
    counts with its first block), everything after the last stage L + 1."""
    if not hasattr(model, "trunk"):
        raise ValueError(f"layer decay needs a convscale model (stem, stages, head), got {type(model).__name__}")
    ids: dict[str, int] = {}
    layer = 0
    for name, module in model.trunk():
        if not name.startswith("stages."):
            ids |= {f"{name}.{p}": 0 for p, _ in module.named_parameters()}
            continue
        blocks = getattr(module, "blocks", module)
        children = list(blocks.named_children()) if isinstance(blocks, nn.Sequential) else [("", blocks)]
        first = layer + 1
        for child, block in children:
            layer += 1
            prefix = f"{name}.blocks" if blocks is not module else name
            path = f"{prefix}.{child}" if child else prefix
            ids |= {f"{path}.{p}": layer for p, _ in block.named_parameters()}
        ids |= {f"{name}.{p}": first for p, _ in module.named_parameters() if f"{name}.{p}" not in ids}
    last = layer + 1
    return {n: ids.get(n, last) for n, _ in model.named_parameters()}, layer


def layer_decay_scales(model: nn.Module, decay: float) -> dict[str, float]:
    """Each parameter's learning-rate factor: ``decay ** (L + 1 - layer)`` (1 for the head)."""
    ids, blocks = layer_ids(model)
    return {n: decay ** (blocks + 1 - i) for n, i in ids.items()}


class FineTuneHook(Hook):
    """``layer_decay``: each parameter's learning-rate factor; ``freeze_epochs``: every parameter but the
    classifier's gets a learning-rate factor of 0 and every normalization layer outside it eval mode, until that
    epoch; ``freeze_bn``: batch-norm layers in eval mode for the whole run (their statistics stay the pretrained
    ones; their scale and shift still learn)."""

    def __init__(self, model: nn.Module, layer_decay: float | None, freeze_epochs: int, freeze_bn: bool) -> None:
        self.model, self.layer_decay = model, layer_decay
        self.freeze_epochs, self.freeze_bn = freeze_epochs, freeze_bn
        self.frozen = False

    def describe(self) -> str:
        parts = [f"layer decay {self.layer_decay}" if self.layer_decay else ""]
        parts.append(f"head only for {self.freeze_epochs} epochs" if self.freeze_epochs else "")
        parts.append("batch-norm statistics frozen" if self.freeze_bn else "")
        return "fine-tuning: " + "; ".join(filter(None, parts))

    def lr_scales(self, model: nn.Module) -> dict[str, float] | None:
        return layer_decay_scales(model, self.layer_decay) if self.layer_decay else None

    def own_groups(self) -> str | None:
        return CLASSIFIER if self.freeze_epochs else None

    def lr_factor(self, group: Mapping[str, Any]) -> float:
        return 0.0 if self.frozen and not group.get("classifier", False) else 1.0

    def on_epoch(self, epoch: int) -> None:
        frozen = self.frozen = epoch < self.freeze_epochs
        for name, module in self.model.named_modules():
            in_head = (name + ".").startswith(CLASSIFIER)
            if isinstance(module, _NORMS) and not in_head:
                bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
                if frozen or (self.freeze_bn and bn):
                    module.eval()

"""Fine-tuning: starting from published weights or another run, as pure pieces the loop joins.

- :func:`published_weights` — the :class:`~convscale.weights.Weights` a run starts from (``--pretrained``), whose
  normalization, interpolation, crop and sizes the run then trains and evaluates with, and whose form (e.g.
  torchvision's batch-norm settings) its model is built in.
- :func:`layer_ids` and :func:`layer_decay_scales` — layer-wise learning-rate decay (BEiT; ConvNeXt's fine-tuning):
  the stem is layer 0, every block of every stage the next layer, the final conv and the head the last (L + 1); a
  layer's learning rate is the base times ``decay ** (L + 1 - layer)``, so each earlier block gets the factor once
  more.
- :class:`FreezeHook` — a head-only warm-up (``--freeze-epochs N``: for the first N epochs only the classifier
  learns; the rest keeps its weights and its batch-norm statistics to the bit) and frozen batch-norm statistics
  for the whole run (``--freeze-bn``, for small batches).

Freezing is a learning rate of zero on the frozen parameters and eval mode on their normalization layers, not
``requires_grad=False``: the parameters stay in the optimizer, DistributedDataParallel and the compiled graph from
the first step, so unfreezing changes nothing but two numbers, and a resumed run is the same run.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..weights.table import Weights
from .hooks import Hook

__all__ = [
    "CLASSIFIER",
    "FreezeHook",
    "keeps_classifier",
    "layer_decay_scales",
    "layer_ids",
    "model_overrides",
    "published_weights",
    "source_classes",
]

CLASSIFIER = "head.fc."  # the parameters a fine-tuning run replaces: they learn from the first step
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def published_weights(cfg: Any) -> Weights | None:
    """The published weights ``cfg.pretrained`` names (True, a tag, ``model.tag``, ``hf-hub:``), else None (no
    pretraining, or a local file or run, which carry no published preprocessing)."""
    if cfg.pretrained in (None, False):
        return None
    from ..weights.hub import hf_repo_weights, resolve_pretrained

    r = resolve_pretrained(cfg.model, cfg.pretrained)
    return hf_repo_weights(cfg.model, r.hf_repo) if r.hf_repo else r.weights


def model_overrides(cfg: Any) -> dict[str, Any]:
    """The ``create_model`` settings of a run's model beyond its name: the published weights' form."""
    w = published_weights(cfg)
    return w.form if w is not None else {}


def source_classes(cfg: Any) -> list[str] | None:
    """The classes the weights ``cfg.pretrained`` names were trained for, where known: ImageNet-1k's WordNet ids for
    published ImageNet weights, a run's own classes; None for a plain checkpoint file or another label set."""
    w = published_weights(cfg)
    if w is not None:
        return w.folders
    from ..weights.checkpoint import TRAIN_FORMAT, read_train_header, run_checkpoint

    try:
        meta = read_train_header(run_checkpoint(cfg.pretrained))
    except (OSError, ValueError):
        return None
    classes = meta.get("classes") if meta.get("format") == TRAIN_FORMAT else None
    return list(classes) if isinstance(classes, list) else None


def keeps_classifier(cfg: Any, classes: list[str]) -> bool:
    """Whether a run keeps the pretrained classifier: only when the weights were trained for exactly the data's
    classes (a longer run on the same data); otherwise the model gets a fresh one for the data's classes (weights of
    another width are left out by the loader anyway; this also catches the same width with other classes)."""
    known = source_classes(cfg)
    return known is None or known == list(classes)


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


class FreezeHook(Hook):
    """``freeze_epochs``: every parameter but the classifier's gets a learning-rate factor of 0 and every
    normalization layer outside it eval mode, until that epoch; ``freeze_bn``: batch-norm layers in eval mode for
    the whole run (their statistics stay the pretrained ones; their scale and shift still learn)."""

    def __init__(self, model: nn.Module, optimizer, freeze_epochs: int, freeze_bn: bool) -> None:
        self.model, self.optimizer = model, optimizer
        self.freeze_epochs, self.freeze_bn = freeze_epochs, freeze_bn

    def on_epoch(self, epoch: int) -> None:
        frozen = epoch < self.freeze_epochs
        for group in self.optimizer.param_groups:
            group["frozen"] = frozen and not group.get("classifier", False)
        for name, module in self.model.named_modules():
            in_head = (name + ".").startswith(CLASSIFIER)
            if isinstance(module, _NORMS) and not in_head:
                bn = isinstance(module, nn.modules.batchnorm._BatchNorm)
                if frozen or (self.freeze_bn and bn):
                    module.eval()

"""The weights a run starts from (``--pretrained``): the published :class:`~convscale.weights.Weights` it names,
whose normalization, interpolation, crop and sizes the run then trains and evaluates with and whose form (e.g.
torchvision's batch-norm settings) its model is built in, and whether the run keeps their classifier."""

from __future__ import annotations

from typing import Any

from ..weights.table import Weights

__all__ = ["keeps_classifier", "model_overrides", "published_weights", "source_classes"]


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
    from ..weights.files import TRAIN_FORMAT, read_train_header, run_checkpoint

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

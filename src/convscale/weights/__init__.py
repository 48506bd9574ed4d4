"""Weights: the published weights as typed data (``table``: one :class:`Weights` per model and tag), fetching them
from the hub (``hub``) and the checkpoint formats read and written (``checkpoint``). The key maps between convscale's
layout and timm's or torchvision's are :mod:`convscale.utils.keymap` (the models and the registry read them)."""

from .table import (
    Weights,
    default_tag,
    get_weights,
    imagenet_classes,
    imagenet_folders,
    key_digest,
    list_pretrained,
    readable_class_names,
    weights_for,
)

__all__ = [
    "Weights",
    "default_tag",
    "get_weights",
    "imagenet_classes",
    "imagenet_folders",
    "key_digest",
    "list_pretrained",
    "readable_class_names",
    "weights_for",
]

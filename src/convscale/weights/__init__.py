"""Weights: the published weights as typed data (``table``: one :class:`Weights` per model and tag), fetching them
from the hub (``hub``), the checkpoint formats read and written (``checkpoint``) and the key maps between convscale's
layout and timm's or torchvision's (``keymap``).

The table's names are importable from here (``from convscale.weights import get_weights``); they load on first use,
so that the registry can read ``keymap`` without the table (which asks the registry about each model's form)."""

from importlib import import_module
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module(".table", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

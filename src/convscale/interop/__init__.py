"""Weights from other libraries: timm, torchvision and the official AsymmNet port's state dicts into convscale
models."""

from .asymmnet import from_asymmnet
from .timm import from_timm, is_timm_form, timm_form, timm_key_map, timm_names
from .torchvision import from_torchvision, torchvision_key_map, torchvision_names

__all__ = [
    "from_asymmnet",
    "from_timm",
    "from_torchvision",
    "is_timm_form",
    "timm_form",
    "timm_key_map",
    "timm_names",
    "torchvision_key_map",
    "torchvision_names",
]

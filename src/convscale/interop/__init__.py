"""Loading weights made by other libraries."""

from .timm import from_timm, timm_form, timm_key_map, timm_names

__all__ = ["from_timm", "timm_form", "timm_key_map", "timm_names"]

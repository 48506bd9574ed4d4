"""Deployment: a model's inference form (``fuse``), exported files (``export``: ONNX, ``.pt2``), the runtimes that
run them (``runtimes``), int8 (``quantize``), the fastest correct form on this machine (``optimize``) and the folder
``convscale deploy`` writes (``bundle``)."""

from .bundle import DEPLOY_FILES, deploy_model
from .exporter import ExportSpec, export, prepare_export, read_metadata
from .fuse import fuse
from .optimize import Candidate, Optimized, optimize, top1_on

__all__ = [
    "DEPLOY_FILES",
    "Candidate",
    "ExportSpec",
    "Optimized",
    "deploy_model",
    "export",
    "fuse",
    "optimize",
    "prepare_export",
    "read_metadata",
    "top1_on",
]

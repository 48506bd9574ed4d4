"""convscale: efficient ConvNets exact to their papers, and the training and measuring tools around them."""

from . import arch, models  # noqa: F401  (registers every model, and architecture files as names)
from .config import ModelConfig, Published
from .exporter import export
from .factory import ModelInfo, create_model, model_info
from .registry import list_families, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "ModelConfig",
    "ModelInfo",
    "Published",
    "__version__",
    "create_model",
    "export",
    "list_families",
    "list_models",
    "model_info",
    "register_model",
]

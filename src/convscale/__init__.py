"""convscale: efficient ConvNets exact to their papers, and the training and measuring tools around them."""

from . import arch, models  # noqa: F401  (registers every model, and architecture files as names)
from .config import ModelConfig, Published
from .data.transforms import EvalPolicy
from .deploy.exporter import export
from .deployed import Predictor, load
from .factory import ModelInfo, create_model, model_info
from .inference import EvalResult, Prediction, evaluate, predict
from .registry import list_families, list_models, register_model
from .source import Source, resolve


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("convscale")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


__version__ = _version()

__all__ = [
    "EvalPolicy",
    "EvalResult",
    "ModelConfig",
    "ModelInfo",
    "Prediction",
    "Predictor",
    "Published",
    "Source",
    "__version__",
    "create_model",
    "evaluate",
    "export",
    "list_families",
    "list_models",
    "load",
    "model_info",
    "predict",
    "register_model",
    "resolve",
]

"""Model families. Importing this package registers every variant."""

from . import efficientnet  # noqa: F401  (registers its variants)
from .base import ClassifierHead, ConvNet, FeatureInfo
from .efficientnet import EfficientNet, EfficientNetConfig, MBStage
from .features import FeatureExtractor

__all__ = [
    "ClassifierHead",
    "ConvNet",
    "EfficientNet",
    "EfficientNetConfig",
    "FeatureExtractor",
    "FeatureInfo",
    "MBStage",
]

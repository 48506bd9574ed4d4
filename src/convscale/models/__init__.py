"""Model families. Importing this package registers every variant."""

from . import convnext, efficientnet, resnet, roadmap  # noqa: F401  (register their variants)
from .base import ClassifierHead, ConvNet, FeatureInfo
from .convnext import ConvNeXt, ConvNeXtConfig
from .efficientnet import EfficientNet, EfficientNetConfig, MBStage
from .features import FeatureExtractor
from .resnet import ResNet, ResNetConfig

__all__ = [
    "ClassifierHead",
    "ConvNeXt",
    "ConvNeXtConfig",
    "ConvNet",
    "EfficientNet",
    "EfficientNetConfig",
    "FeatureExtractor",
    "FeatureInfo",
    "MBStage",
    "ResNet",
    "ResNetConfig",
]

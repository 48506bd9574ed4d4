"""Model families. Importing this package registers every variant."""

from . import asymmnet, convnext, efficientnet, ghostnet, mobilenet, nfnet, repvgg, resnet, roadmap, shufflenet  # noqa: F401  (register their variants)
from .base import ClassifierHead, ConvNet, FeatureInfo
from .convnext import ConvNeXt, ConvNeXtConfig
from .efficientnet import EfficientNet, EfficientNetConfig, MBStage
from .features import FeatureExtractor
from .nfnet import NFNetConfig, NormFreeNet
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
    "NFNetConfig",
    "NormFreeNet",
    "ResNet",
    "ResNetConfig",
]

"""Shared layers: one implementation of each, used by every model family."""

from .activations import create_act, get_act_layer
from .bottleneck import BasicBlock, Bottleneck, InvertedBottleneck
from .conv import Conv2dSame, create_conv2d, pad_same
from .conv_norm_act import ConvNormAct
from .drop import DropPath, drop_path
from .helpers import make_divisible
from .mbconv import FusedMBConv, MBConv
from .mlp import Mlp
from .norm import BN_EPS_TF, BN_MOMENTUM_TF, LayerNorm2d, get_norm_layer
from .residual import LayerScale
from .squeeze_excite import SEConfig, SqueezeExcite, se_channels

__all__ = [
    "BN_EPS_TF",
    "BN_MOMENTUM_TF",
    "BasicBlock",
    "Bottleneck",
    "Conv2dSame",
    "ConvNormAct",
    "DropPath",
    "FusedMBConv",
    "InvertedBottleneck",
    "LayerNorm2d",
    "LayerScale",
    "MBConv",
    "Mlp",
    "SEConfig",
    "SqueezeExcite",
    "create_act",
    "create_conv2d",
    "drop_path",
    "get_act_layer",
    "get_norm_layer",
    "make_divisible",
    "pad_same",
    "se_channels",
]

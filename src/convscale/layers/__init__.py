"""Shared layers: one implementation of each, used by every model family."""

from .activations import create_act, get_act_layer
from .conv import Conv2dSame, create_conv2d, pad_same
from .conv_norm_act import ConvNormAct
from .drop import DropPath, drop_path
from .helpers import make_divisible
from .mbconv import FusedMBConv, MBConv
from .norm import BN_EPS_TF, BN_MOMENTUM_TF, get_norm_layer
from .squeeze_excite import SEConfig, SqueezeExcite, se_channels

__all__ = [
    "BN_EPS_TF",
    "BN_MOMENTUM_TF",
    "Conv2dSame",
    "ConvNormAct",
    "DropPath",
    "FusedMBConv",
    "MBConv",
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

"""The shared layers, each checked against the rule it implements."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscale.layers import (
    Conv2dSame,
    ConvNormAct,
    DropPath,
    SEConfig,
    create_act,
    create_conv2d,
    get_act_layer,
    get_norm_layer,
    make_divisible,
    se_channels,
)
from convscale.scaling import round_filters, round_repeats


@pytest.mark.parametrize(
    ("value", "width", "limit", "expected"),
    [
        (32, 1.1, 0.9, 32),  # 35.2 -> 32 (lost 9%)
        (1280, 1.1, 0.9, 1408),
        (40, 1.1, 0.9, 48),  # 44 -> 48 (ties round up)
        (16, 1.2, 0.9, 24),  # 19.2 -> 16 lost >10%: one more divisor
        (16, 1.2, 0.0, 16),  # the V2 code drops the 10% rule
        (4, 1.0, 0.9, 8),  # at least the divisor
    ],
)
def test_round_filters(value, width, limit, expected):
    assert round_filters(value, width, round_limit=limit) == expected


def test_round_repeats_is_ceil():
    assert [round_repeats(n, 1.1) for n in (1, 2, 3, 4)] == [2, 3, 4, 5]
    assert round_repeats(3, 3.1) == 10


def test_make_divisible_min_value():
    assert make_divisible(3, 8, min_value=16) == 16


def _tf_same_reference(x, weight, stride):
    """TensorFlow 'same': total pad max((ceil(i/s)-1)*s + k - i, 0), extra pixel at the end."""
    k = weight.shape[-1]
    pads = []
    for i in (x.shape[3], x.shape[2]):
        total = max((math.ceil(i / stride) - 1) * stride + k - i, 0)
        pads += [total // 2, total - total // 2]
    return F.conv2d(F.pad(x, pads), weight, stride=stride)


@pytest.mark.parametrize("size", [(7, 7), (8, 9), (113, 112)])
@pytest.mark.parametrize(("kernel", "stride"), [(3, 2), (5, 2), (3, 1), (2, 2)])
def test_same_padding_matches_tensorflow(size, kernel, stride):
    conv = create_conv2d(4, 6, kernel, stride, padding="same")
    x = torch.randn(1, 4, *size)
    expected = _tf_same_reference(x, conv.weight, stride)
    assert conv(x).shape == expected.shape == (1, 6, math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    torch.testing.assert_close(conv(x), expected)


def test_same_padding_only_where_needed():
    assert type(create_conv2d(4, 4, 3, 1, padding="same")) is nn.Conv2d  # static symmetric pad is 'same' here
    assert isinstance(create_conv2d(4, 4, 3, 2, padding="same"), Conv2dSame)
    assert type(create_conv2d(4, 4, 3, 2)) is nn.Conv2d
    assert create_conv2d(8, 8, 3, groups=-1).groups == 8
    with pytest.raises(ValueError, match="padding"):
        create_conv2d(4, 4, 3, padding="valid")


def test_se_channels_from_input_or_expanded():
    # EfficientNet: 0.25 of the block input (16 -> 4), though the SE acts on the expanded 96 channels
    assert se_channels(16, 96, 0.25) == 4
    # MobileNetV3: 0.25 of the expanded channels, rounded to a multiple of 8
    assert se_channels(24, 72, 0.25, from_expanded=True, divisor=8) == 24
    se = SEConfig(0.25).build(16, 96, "silu")
    assert (se.reduce.in_channels, se.reduce.out_channels, se.expand.out_channels) == (96, 4, 96)
    assert isinstance(se.act, nn.SiLU) and isinstance(se.gate, nn.Sigmoid)


def test_squeeze_excite_rescales_channels():
    se = SEConfig(0.5, act_layer="relu").build(4, 4, "silu")
    x = torch.randn(2, 4, 5, 5)
    gate = torch.sigmoid(se.expand(torch.relu(se.reduce(x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(se(x), x * gate)


def test_drop_path():
    dp = DropPath(0.5)
    x = torch.ones(1000, 3)
    dp.eval()
    assert torch.equal(dp(x), x)
    dp.train()
    y = dp(x)
    kept = y[:, 0] != 0
    assert torch.all(y[kept] == 2.0)  # survivors are divided by the keep probability
    assert 0.4 < kept.float().mean() < 0.6
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_factories_take_names_or_classes():
    assert get_act_layer("swish") is nn.SiLU and get_act_layer(nn.GELU) is nn.GELU
    assert isinstance(create_act("relu", inplace=True), nn.ReLU) and create_act("relu", inplace=True).inplace
    assert isinstance(create_act(None), nn.Identity)
    bn = get_norm_layer("batchnorm_tf")(8)
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
    assert get_norm_layer(nn.BatchNorm2d) is nn.BatchNorm2d
    with pytest.raises(ValueError, match="unknown activation"):
        get_act_layer("swishy")
    with pytest.raises(ValueError, match="unknown norm"):
        get_norm_layer("batchnrom")


def test_conv_norm_act_bias_only_without_norm():
    assert ConvNormAct(3, 8, 3).conv.bias is None
    block = ConvNormAct(3, 8, 3, norm_layer=None, act_layer=None)
    assert block.conv.bias is not None and isinstance(block.bn, nn.Identity)

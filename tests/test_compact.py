"""Compact and re-parameterizable models: RepVGG, MobileNetV2/V3, GhostNet, ShuffleNetV2, and their interop."""

import pytest
import torch
from torch import nn

import convscale
from convscale.interop import from_torchvision, torchvision_key_map, torchvision_names
from convscale.layers import MBConv
from convscale.layers.ghost import GhostModule
from convscale.layers.repvgg import RepVGGBlock
from convscale.layers.shuffle import channel_shuffle
from convscale.registry import get_entry


def test_channel_shuffle_interleaves_the_two_halves():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_shuffle_unit_keeps_half_the_channels_untouched():
    model = convscale.create_model("test_shufflenet_v2").eval()
    unit = model.stages[0][1]  # stride 1
    x = torch.randn(1, unit.branch2[0].conv.in_channels * 2, 8, 8)
    out = unit(x)
    torch.testing.assert_close(out[:, 0::2], x[:, : x.shape[1] // 2])  # after the shuffle: even channels


def test_ghost_module_makes_half_its_maps_cheaply():
    m = GhostModule(16, 32)
    assert (m.primary.conv.out_channels, m.cheap.conv.groups, m.cheap.conv.out_channels) == (16, 16, 16)
    assert m(torch.randn(1, 16, 8, 8)).shape == (1, 32, 8, 8)
    assert GhostModule(16, 30)(torch.randn(1, 16, 8, 8)).shape == (1, 30, 8, 8)  # odd halves: sliced


@pytest.mark.parametrize(("in_chs", "out_chs", "stride", "groups"), [(8, 8, 1, 1), (8, 8, 1, 2), (8, 16, 2, 1)])
def test_repvgg_block_reparameterizes_exactly(in_chs, out_chs, stride, groups):
    block = RepVGGBlock(in_chs, out_chs, stride, groups=groups)
    for bn in [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]:
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.5, 0.5)
    block.eval().double()
    x = torch.randn(2, in_chs, 9, 9, dtype=torch.float64)
    expected = block(x)
    assert (block.identity is not None) == (in_chs == out_chs and stride == 1)
    block.reparameterize()
    assert block.conv_kxk is None and block.reparam.kernel_size == (3, 3) and block.reparam.groups == groups
    torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-10)


def test_repvgg_groups_every_second_block():
    model = convscale.create_model("repvgg_b1g4")
    groups = [b.groups for stage in model.stages for b in stage]
    assert groups[:4] == [1, 4, 1, 4] and groups.count(4) == 13  # official layers 2, 4, …, 26
    assert model.stem.groups == 1


def test_mobilenets_are_mbconv_stage_tables():
    """MobileNetV2/V3 reuse the EfficientNet family's block: no second inverted-residual implementation."""
    for name in ("mobilenetv2_100", "mobilenetv3_large_100", "mobilenetv3_small_100"):
        model = convscale.create_model(name)
        assert all(isinstance(b, MBConv) for s in model.stages for b in s)
    v3 = convscale.create_model("mobilenetv3_large_100")
    block = v3.stages[2][0]  # 40 ch, SE from the expanded 72 → make_divisible(18, 8) = 24, ReLU rows
    assert (block.se.reduce.in_channels, block.se.reduce.out_channels) == (72, 24)
    assert isinstance(block.se.gate, nn.Hardsigmoid) and isinstance(block.dw.act, nn.ReLU)
    assert isinstance(v3.stages[3][0].dw.act, nn.Hardswish) and len(v3.stages[3]) == 4  # a stage of three rows
    assert v3.head.hidden.out_features == 1280 and v3.num_features == 1280


def test_a_continuing_row_cannot_change_the_stride():
    from convscale.models.efficientnet import MBStage

    cfg = get_entry("test_mobilenetv3").config
    bad = (*cfg.stages, MBStage("mbconv", 1, 3, 2, 2, 32, continues=True))
    with pytest.raises(ValueError, match="continues a stage"):
        convscale.create_model("test_mobilenetv3", stages=bad)


def test_torchvision_names_and_errors():
    assert set(torchvision_names()) >= {"shufflenet_v2_x0_5", "shufflenet_v2_x2_0", "mobilenet_v2"}
    with pytest.raises(ValueError, match="expected one of"):
        from_torchvision("resnet50", {})
    with pytest.raises(ValueError, match="not torchvision's"):
        from_torchvision("mobilenet_v2", {"x": torch.zeros(1)})
    with torch.device("meta"):
        keys = torchvision_key_map(convscale.create_model("shufflenet_v2_x2_0"))
    assert keys["final.conv.weight"] == "conv5.0.weight" and keys["stages.2.0.branch1.1.bn.bias"] == (
        "stage4.0.branch1.3.bias"
    )

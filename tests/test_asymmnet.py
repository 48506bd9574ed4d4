"""AsymmNet exact to its official PyTorch port: parameter counts (true, and as published), MAdds from the official
tables, the port's logits through ``from_asymmnet``, the block's feature reuse, and bad input as one line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import parity_fixture
from convscale import create_model
from convscale.deploy import fuse
from convscale.factory import count_model
from convscale.interop import from_asymmnet
from convscale.layers import MBConv

#: true parameter counts (M) and MAdds (M) at 224 px, counted from the official tables (shared/reference/ASYMMNET.md);
#: the ×1.0 parameter counts are the fixtures' exact ones
COUNTS = {
    "asymmnet_large_100": (6_076_608, 216.92),
    "asymmnet_large_075": (4.291e6, 142.08),
    "asymmnet_large_050": (2.845e6, 67.24),
    "asymmnet_large_035": (2.207e6, 42.62),
    "asymmnet_small_100": (3_131_896, 57.67),
    "asymmnet_small_075": (2.495e6, 40.82),
    "asymmnet_small_050": (1.964e6, 20.59),
    "asymmnet_small_035": (1.735e6, 15.24),
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_params_and_madds_are_the_official_tables(name):
    params, madds = COUNTS[name]
    got_params, macs = count_model(name, (224,))
    if name.endswith("_100"):
        assert got_params == params
    else:  # the reference gives three decimals of a million
        assert abs(got_params - params) <= 500, got_params
    assert abs(macs[224] / 1e6 - madds) <= 0.005, macs[224] / 1e6


def _published_convention(model: nn.Module) -> int:
    """Parameters counted as the tool behind the repository's macc.txt does: a k×k kernel as k weights, not k² (the
    depthwise kernels, and the stem's 3×3: the only other conv with k > 1)."""
    total = 0
    for m in model.modules():
        for p in m.parameters(recurse=False):
            spatial = isinstance(m, nn.Conv2d) and p is m.weight and m.kernel_size[0] > 1
            total += p.numel() // m.kernel_size[0] if spatial else p.numel()
    return total


def test_the_published_parameter_count_is_the_c_times_k_convention():
    with torch.device("meta"):
        model = create_model("asymmnet_large_100")
    assert _published_convention(model) == 5_991_776
    assert sum(p.numel() for p in model.parameters()) == 6_076_608
    for name, published in (("asymmnet_large_050", 2.802), ("asymmnet_small_100", 3.076)):  # the reference's recount
        with torch.device("meta"):
            assert round(_published_convention(create_model(name)) / 1e6, 3) == published


@pytest.mark.parametrize("fused", [False, True], ids=["model", "fused"])
@pytest.mark.parametrize("name", ["asymmnet_large_100", "asymmnet_small_100"])
def test_reproduces_the_official_ports_logits(name, fused):
    ref, weights, x, expected = parity_fixture(f"asymmnet__{name}")
    assert ref == name
    model = from_asymmnet(name, weights).eval()
    if fused:
        model = fuse(model)
    with torch.no_grad():
        got = model(x).double()
    assert ((got - expected).abs().max() / expected.abs().max()).item() <= 1e-4


def test_the_block_reuses_its_input_on_both_sides():
    """Expanding 16 -> 64: the 1×1 conv computes 48 channels and the depthwise conv sees [x, pw(x), x] (80)."""
    block = MBConv(16, 24, 3, 2, mid_chs=64, reuse=1, act_layer="relu").eval()
    assert block.expand.conv.out_channels == 48 and block.dw.conv.in_channels == 80
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        inner = block.expand(x)
        want = block.project(block.dw(torch.cat([x, inner, x], 1)))
        assert torch.equal(block(x), want)
    same = MBConv(16, 16, 3, 1, mid_chs=16, reuse=1)  # exp == in: no expansion, the residual kept
    assert isinstance(same.expand, nn.Identity) and same.has_skip and same.dw.conv.in_channels == 16


def test_bad_input_names_the_mismatch():
    _, weights, _, _ = parity_fixture("asymmnet__asymmnet_large_100")
    with pytest.raises(ValueError, match=r"asymmnet_large_090.*did you mean"):
        from_asymmnet("asymmnet_large_090", weights)
    with pytest.raises(ValueError, match=r"not the official port's asymmnet_large_075: shape mismatch"):
        from_asymmnet("asymmnet_large_075", weights)
    with pytest.raises(ValueError, match="not an AsymmNet"):
        from_asymmnet("mobilenetv3_large_100", weights)
    with pytest.raises(ValueError, match="not the official port's asymmnet_small_100"):
        from_asymmnet("asymmnet_small_100", weights)


#: MobileNetV3 as the AsymmNet repository builds it (its tables, rounding and head: AsymmNet without the reuse), the
#: paper's baseline: params (M) and MAdds (M) at 224 px from shared/reference/ASYMMNET.md
REPO_MOBILENETV3 = {
    "large_100": (5.482, 216.59), "large_075": (3.937, 142.14), "large_050": (2.681, 65.91),
    "large_035": (2.127, 41.68), "small_100": (2.945, 56.91), "small_075": (2.388, 40.36),
    "small_050": (1.906, 19.96), "small_035": (1.703, 14.78),
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(REPO_MOBILENETV3))
def test_without_the_reuse_it_is_the_repositorys_mobilenetv3(variant):
    from convscale.counting import count_macs

    params, madds = REPO_MOBILENETV3[variant]
    with torch.device("meta"):
        model = create_model(f"asymmnet_{variant}", reuse=0)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 3) == params
    assert round(count_macs(model, 224) / 1e6, 2) == madds

"""Reference logits reproduced through convscale.interop.from_timm / from_torchvision, before and after
``deploy.fuse``. Fixtures from shared/parity; the torchvision MobileNet ones are made the same way by
scripts/make_torchvision_fixtures.py (shared/parity has none)."""

import pytest
import torch

from conftest import parity_fixture
from convscale.deploy import fuse
from convscale.interop import from_timm, from_torchvision

FIXTURES = [
    "timm__efficientnet_b0",
    "timm__tf_efficientnet_b0",
    "timm__tf_efficientnetv2_s",
    "timm__convnext_atto",  # timm's 1×1-conv MLP layout, reshaped into our linear one
    "timm__convnext_tiny",
    "timm__resnet50",
    "timm__dm_nfnet_f0",  # odd 113×113 input: 'same' padding
    "timm__nf_resnet50",
    "timm__mobilenetv2_100",
    "timm__mobilenetv3_large_100",
    "timm__repvgg_a0",
    "timm__ghostnet_100",
    "torchvision__shufflenet_v2_x1_0",
    "torchvision__mobilenet_v2",
    "torchvision__mobilenet_v3_large",  # BN eps 1e-3, a Linear where timm has a 1×1 conv
    "torchvision__mobilenet_v3_small",
]


def _relative_error(fixture: str, model_name: str | None = None, fused: bool = False) -> float:
    name, weights, x, expected = parity_fixture(fixture)
    load = from_torchvision if fixture.startswith("torchvision__") else from_timm
    model = load(model_name or name, weights).eval()
    if fused:
        model = fuse(model)
    with torch.no_grad():
        got = model(x).double()
    assert got.shape == expected.shape
    return ((got - expected).abs().max() / expected.abs().max()).item()


@pytest.mark.parametrize("fused", [False, True], ids=["model", "fused"])
@pytest.mark.parametrize("fixture", FIXTURES)
def test_reproduces_reference_logits(fixture, fused):
    assert _relative_error(fixture, fused=fused) <= 1e-4


def test_tf_padding_and_eps_matter():
    """The same weights in the PyTorch-style model miss the tf_ fixture by far: the check can fail."""
    assert _relative_error("timm__tf_efficientnet_b0", "efficientnet_b0") > 1e-2

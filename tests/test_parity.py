"""Reference logits (shared/parity fixtures) reproduced through convscale.interop.from_timm."""

import pytest
import torch

from conftest import parity_fixture
from convscale.interop import from_timm

FIXTURES = [
    "timm__efficientnet_b0",
    "timm__tf_efficientnet_b0",
    "timm__tf_efficientnetv2_s",
    "timm__convnext_atto",  # timm's 1×1-conv MLP layout, reshaped into our linear one
    "timm__convnext_tiny",
    "timm__resnet50",
    "timm__dm_nfnet_f0",  # odd 113×113 input: 'same' padding
    "timm__nf_resnet50",
]


def _max_error(model_name: str, fixture: str) -> tuple[float, float]:
    _, weights, x, expected = parity_fixture(fixture)
    model = from_timm(model_name, weights).eval()
    with torch.no_grad():
        got = model(x).double()
    assert got.shape == expected.shape
    return (got - expected).abs().max().item(), expected.abs().max().item()


@pytest.mark.parametrize("fixture", FIXTURES)
def test_reproduces_reference_logits(fixture):
    name = parity_fixture(fixture)[0]
    err, scale = _max_error(name, fixture)
    assert err <= 1e-4 * scale


def test_tf_padding_and_eps_matter():
    """The same weights in the PyTorch-style model miss the tf_ fixture by far: the check can fail."""
    err, scale = _max_error("efficientnet_b0", "timm__tf_efficientnet_b0")
    assert err > 1e-2 * scale

"""deploy.fuse over the whole registry: same outputs as the eval-mode original, no batch norm or training-only
branch left, idempotent; RepVGG's deploy form has the paper's parameter counts."""

import pytest
import torch
from torch import nn

import convscale
from conftest import ALL_MODELS, TINY_MODELS, meta_model
from convscale.deploy import fuse
from convscale.factory import count_model
from convscale.layers.repvgg import RepVGGBlock
from convscale.layers.std_conv import ScaledStdConv2d

#: above this many parameters a model is checked on the meta device (structure); its tiny variant checks values
_NUMERIC_LIMIT = 30e6


@torch.no_grad()
def _calibrate_norms(model: nn.Module, x: torch.Tensor) -> None:
    """BN affine parameters drawn away from (1, 0) and running statistics measured on ``x`` (as after training), so
    that folding has something to get wrong while the signal keeps a trained network's scale."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.6 - 0.3)
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass sets the statistics of x
    model.train()(x)


def _assert_inference_form(model: nn.Module) -> None:
    kinds = (nn.BatchNorm2d, nn.Dropout, ScaledStdConv2d)
    assert not [n for n, m in model.named_modules() if isinstance(m, kinds)]
    assert all(b.reparam is not None for b in model.modules() if isinstance(b, RepVGGBlock))
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.ndim == 4)


def _count_norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _relative(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / scale.abs().max()).item()


def _fuse_param(name: str):
    """Models of 10-30M parameters check their values in the slow tests; the smaller ones (and every tiny variant)
    every time; the larger ones their structure, on the meta device, every time."""
    params = count_model(name, ())[0]
    return pytest.param(name, marks=pytest.mark.slow) if 10e6 < params <= _NUMERIC_LIMIT else name


@pytest.mark.parametrize("name", [_fuse_param(n) for n in ALL_MODELS])
def test_fuse_keeps_the_outputs(name):
    """In float64 the fused model computes the original's function (to 1e-8 of the output scale: the transform is
    exact). In float32 the tiny variants agree to 1e-5 as well; the full models with these untrained weights are
    too ill-conditioned for that (their own float32 outputs already differ from float64 by up to 3e-5), so their
    float32 check is the parity fixtures' (test_parity.py, after fuse)."""
    if count_model(name, ())[0] > _NUMERIC_LIMIT:
        with torch.device("meta"):
            _assert_inference_form(fuse(meta_model(name).eval()))
        return
    model = convscale.create_model(name, drop_path_rate=0.0)
    x = torch.randn(2, 3, 64, 64)
    _calibrate_norms(model, x)  # the statistics of the very input: every BN output is normalized
    model.eval()
    norms_before = _count_norms(model)
    fused = fuse(model)
    _assert_inference_form(fused)
    with torch.no_grad():
        got32, again = fused(x), fuse(fused)(x)
        expected32 = model(x)
        exact = model.double()(x.double())
        got64 = fuse(model)(x.double())
    assert torch.equal(again, got32)  # idempotent
    assert _relative(got64, exact, exact) <= 1e-8
    if name in TINY_MODELS:  # well-conditioned: the float32 outputs agree to 1e-5 as they are
        assert _relative(got32, expected32, exact) <= 1e-5
    assert _count_norms(model) == norms_before  # the original is left as it was


def test_fuse_refuses_a_model_in_training_mode():
    with pytest.raises(ValueError, match="eval mode"):
        fuse(convscale.create_model("test_repvgg"))


def test_fuse_refuses_what_is_not_a_model():
    with pytest.raises(ValueError, match=r"nn\.Module"):
        fuse("resnet50")


#: paper Tables 4/5: parameters after re-parameterization
DEPLOY_PARAMS_M = {"a0": 8.30, "a1": 12.78, "b0": 14.33, "a2": 25.49, "b1": 51.82, "b2": 80.31, "b3": 110.96}


@pytest.mark.parametrize("variant", DEPLOY_PARAMS_M)
def test_repvgg_deploy_params_match_the_paper(variant):
    with torch.device("meta"):
        model = convscale.create_model(f"repvgg_{variant}").eval()
        fused = fuse(model)
    params = sum(p.numel() for p in fused.parameters()) / 1e6
    assert params == pytest.approx(DEPLOY_PARAMS_M[variant], abs=0.01)
    assert sum(p.numel() for p in model.parameters()) > params * 1e6  # training form: more
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in fused.modules())  # plain 3×3 stack

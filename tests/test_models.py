"""Every registered model, through the common API (the registry drives the parametrization)."""

import pytest
import torch

import convscale
from conftest import ALL_MODELS, TINY_MODELS, is_big, meta_model
from convscale.models.features import FeatureExtractor
from convscale.registry import get_entry


def _finite_grads(model: torch.nn.Module) -> None:
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if is_big(n) else n for n in ALL_MODELS])
def test_forward_backward(name):
    """Real values: finite logits and gradients. Models over 30M parameters are ``slow``: their blocks are those of
    the smaller variants and the tiny ones, which run every time, and their shapes are checked on the meta device
    every time too (``test_reset_classifier``, ``test_features_only_strides_and_channels``)."""
    model = convscale.create_model(name, num_classes=10)
    model.train()
    out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 10)
    out.sum().backward()
    _finite_grads(model)


@pytest.mark.parametrize("name", TINY_MODELS)
@pytest.mark.parametrize("size", [(97, 113), (32, 32), (64, 48)])
def test_tiny_odd_sizes(name, size):
    model = convscale.create_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, *size)).shape == (2, 7)


def _documented_strides(name: str) -> list[int]:
    """What the docs promise: strides 2…32 for stems that reduce by 2 first, 4…32 for patchify stems, 16 isotropic."""
    entry = get_entry(name)
    if entry.family == "convnext_isotropic":
        return [16]
    if getattr(entry.config, "patch_size", None) == 4 or getattr(entry.config, "stem", None) in (
        "patchify",
        "deep_quad",
    ):
        return [4, 8, 16, 32]
    return [2, 4, 8, 16, 32]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_features_only_strides_and_channels(name):
    backbone = FeatureExtractor(meta_model(name), None)  # = create_model(name, features_only=True), built once
    with torch.device("meta"):  # shapes only: fast for the largest models too
        feats = backbone(torch.empty(2, 3, 64, 96))
    info = backbone.feature_info
    assert [f.reduction for f in info] == _documented_strides(name)
    for f, fmap in zip(info, feats, strict=True):
        assert fmap.shape == (2, f.num_chs, 64 // f.reduction, 96 // f.reduction)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_features_only_values_and_out_indices(name):
    model = convscale.create_model(name).eval()
    backbone = convscale.create_model(name, features_only=True, out_indices=(0, -1)).eval()
    # the backbone keeps the model's names (minus the head), so the classifier's weights load strictly
    backbone.load_state_dict({k: v for k, v in model.state_dict().items() if k in backbone.state_dict()})
    assert not any(k.startswith(("final.", "head.")) for k in backbone.state_dict())
    first, last = model.feature_info[0], model.feature_info[-1]
    assert backbone.feature_info == ([first, last] if first != last else [last])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = backbone(x)
        torch.testing.assert_close(feats[-1], model.forward_trunk(x))


@pytest.mark.parametrize("name", ALL_MODELS)
def test_reset_classifier(name):
    model = meta_model(name)
    with torch.device("meta"):
        model.reset_classifier(5)
        assert model(torch.empty(2, 3, 64, 64)).shape == (2, 5)
        model.reset_classifier(0)
        assert model(torch.empty(2, 3, 64, 64)).shape == (2, model.num_features)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_forward_head_pre_logits(name):
    model = convscale.create_model(name).eval()
    x = torch.randn(2, 3, 64, 64)
    feats = model.forward_features(x)
    pooled = model.forward_head(feats, pre_logits=True)
    assert pooled.shape == (2, model.num_features)
    torch.testing.assert_close(model.forward_head(feats), model(x))


@pytest.mark.parametrize("name", TINY_MODELS)
def test_grad_checkpointing_gives_the_same_gradients(name):
    torch.manual_seed(0)
    model = convscale.create_model(name, drop_path_rate=0.0, drop_rate=0.0)
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.load_state_dict(model.state_dict())
    model.set_grad_checkpointing()
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[n], rtol=1e-4, atol=1e-5, msg=n)


def test_drop_path_rises_linearly_per_block():
    model = convscale.create_model("efficientnet_b0")
    rates = [b.drop_path.drop_prob for s in model.stages for b in s if hasattr(b.drop_path, "drop_prob")]
    blocks = [b for s in model.stages for b in s]
    assert len(blocks) == 16
    # blocks with a residual carry 0.2 * index / 16; the others have none
    expected = [0.2 * i / 16 for i, b in enumerate(blocks) if b.has_skip and i > 0]
    assert rates == pytest.approx(expected)


def test_channels_last_and_eval_are_consistent():
    model = convscale.create_model("test_efficientnetv2").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = model(x)
        b = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

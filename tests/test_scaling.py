"""Compound scaling: the rule, and any base model at any (width, depth, resolution)."""

import pytest
import torch

import convscale
from convscale.counting import count_params
from convscale.registry import get_entry
from convscale.scaling import compound, scaled_config


def test_compound_rule():
    m = compound(1)
    assert (m.depth, m.width, m.resolution) == pytest.approx((1.2, 1.1, 1.15))
    assert m.flops_factor == pytest.approx(1.92, abs=0.01)  # α·β²·γ² ≈ 2
    assert compound(3).depth == pytest.approx(1.2**3)
    assert compound(0).width == 1.0
    with pytest.raises(ValueError, match="alpha must be >= 1"):
        compound(1, alpha=0.9)


def test_scaling_b0_by_released_coefficients_gives_b2():
    b0 = get_entry("efficientnet_b0").config
    cfg = scaled_config(b0, width=1.1, depth=1.2, resolution=260)
    with torch.device("meta"):
        scaled = get_entry("efficientnet_b0").build(cfg, num_classes=1000, in_chans=3)
        b2 = convscale.create_model("efficientnet_b2")
    assert count_params(scaled) == count_params(b2)
    assert (cfg.train_res, cfg.test_res, cfg.published) == (260, 260, None)


def test_scaling_by_phi_and_through_create_model():
    cfg = scaled_config(get_entry("efficientnet_b0").config, phi=2)
    assert cfg.width_mult == pytest.approx(1.21) and cfg.depth_mult == pytest.approx(1.44)
    assert cfg.train_res == 296  # 224 · 1.15² rounded to a multiple of 8
    model = convscale.create_model("test_efficientnetv2", width_mult=1.5, depth_mult=2.0)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
    with pytest.raises(ValueError, match="must be > 0"):
        scaled_config(cfg, width=0)

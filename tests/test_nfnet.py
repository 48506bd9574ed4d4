"""Normalizer-free networks: scaled WS conv, the NF block's bookkeeping, AGC, signal propagation."""

import csv
import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import convscale
from convscale.cli import main
from convscale.interop.timm import timm_form, timm_key_map
from convscale.layers.nf_block import NF_GAMMA, NFBlock
from convscale.layers.std_conv import ScaledStdConv2d
from convscale.methods.agc import adaptive_clip_grad_, agc_parameters, attach_agc, unitwise_norm
from convscale.registry import get_entry

# --- scaled weight standardization -------------------------------------------------------------------------------


def test_scaled_std_conv_standardizes_each_unit():
    conv = ScaledStdConv2d(8, 4, 3, eps=0.0)
    nn.init.normal_(conv.weight, 3.0, 5.0)
    w = conv.standardized_weight().reshape(4, -1)
    torch.testing.assert_close(w.mean(1), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close((w**2).sum(1), torch.ones(4))  # (W - μ) / (σ·sqrt(N)): unit norm per unit


def test_scaled_std_conv_preserves_variance_with_gamma():
    torch.manual_seed(0)
    conv = ScaledStdConv2d(256, 256, 1, gamma=NF_GAMMA["relu"], bias=False)
    y = conv(torch.relu(torch.randn(8, 256, 16, 16)))
    assert y.var().item() == pytest.approx(1.0, rel=0.1)  # γ undoes the ReLU's variance loss


def test_same_padding_for_deepmind_weights():
    conv = ScaledStdConv2d(3, 4, 3, 2, padding="same")
    assert conv(torch.randn(1, 3, 113, 113)).shape == (1, 4, 57, 57)


# --- models --------------------------------------------------------------------------------------------------------


def test_nf_block_beta_resets_after_each_transition():
    model = convscale.create_model("nfnet_f0")
    betas = [[b.beta for b in stage] for stage in model.stages]
    alpha2 = 0.2**2
    expected_var = 1.0
    for stage in betas:
        for j, beta in enumerate(stage):
            assert beta == pytest.approx(expected_var**-0.5)
            expected_var = (1.0 if j == 0 else expected_var) + alpha2


def test_nfnet_variant_data():
    f0, f6 = get_entry("nfnet_f0").config, get_entry("dm_nfnet_f6").config
    assert (f0.depths, f0.channels) == ((1, 2, 6, 3), (256, 512, 1536, 1536))
    assert (f0.train_res, f0.test_res, f0.drop_rate, f0.randaugment_magnitude) == (192, 256, 0.2, 5)
    assert (f6.depths, f6.train_res, f6.test_res, f6.drop_rate, f6.randaugment_magnitude) == (
        (7, 14, 42, 21),
        448,
        576,
        0.5,
        15,
    )
    assert (f6.padding, f6.gamma_in_act, f6.skipinit) == ("same", True, True)
    block = convscale.create_model("test_nfnet").stages[1][0]
    assert isinstance(block, NFBlock) and block.skipinit_gain.item() == 0.0 and not block.drop_path.scale_by_keep
    assert block.conv2.groups == block.conv2.in_channels // 8  # group width (8 in the tiny model; 128 in F0-F7)


def test_nf_resnet_has_no_norm_layers():
    model = convscale.create_model("nf_resnet50")
    assert not any(isinstance(m, nn.BatchNorm2d | nn.LayerNorm | nn.GroupNorm) for m in model.modules())


# --- AGC -----------------------------------------------------------------------------------------------------------


def test_agc_clips_exactly_the_units_over_the_threshold():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]]))  # unit norms 5, 0 (-> eps), 1
    w.grad = torch.tensor([[0.3, 0.4], [0.0, 0.5], [0.001, 0.0]])  # grad norms 0.5, 0.5, 0.001
    adaptive_clip_grad_([w], clip_factor=0.01, eps=1e-3)
    norms = unitwise_norm(w.grad).flatten()
    assert norms[0].item() == pytest.approx(0.01 * 5)  # 0.5 > 0.05: clipped to λ·‖W‖
    assert norms[1].item() == pytest.approx(0.01 * 1e-3)  # zero weights: λ·eps
    assert torch.equal(w.grad[2], torch.tensor([0.001, 0.0]))  # 0.001 <= 0.01: untouched
    torch.testing.assert_close(w.grad[0] / norms[0], torch.tensor([0.6, 0.8]))  # direction kept


def test_agc_units_of_conv_weights_and_vectors():
    conv_grad = torch.randn(4, 3, 3, 3)
    assert unitwise_norm(conv_grad).shape == (4, 1, 1, 1)
    assert unitwise_norm(torch.randn(7)).shape == ()


def test_agc_changes_nothing_under_the_threshold():
    model = convscale.create_model("test_nf_resnet")
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    params = agc_parameters(model)
    before = [p.grad.clone() for p in params]
    adaptive_clip_grad_(params, clip_factor=1e6)
    assert all(torch.equal(a, p.grad) for a, p in zip(before, params, strict=True))


def test_agc_leaves_the_classifier_out_by_identity():
    model = convscale.create_model("test_nfnet")
    kept = {id(p) for p in agc_parameters(model)}
    assert id(model.head.fc.weight) not in kept and id(model.head.fc.bias) not in kept
    assert id(model.final.conv.weight) in kept  # the layer before it is clipped
    assert len(kept) == len(list(model.parameters())) - 2
    other = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))  # not by position: whatever module is named
    assert {id(p) for p in agc_parameters(other, exclude=other[0])} == {id(p) for p in other[1].parameters()}


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.AdamW])
def test_agc_with_any_optimizer(optimizer):
    torch.manual_seed(0)
    model = convscale.create_model("test_nf_resnet", num_classes=3)
    opt = optimizer(model.parameters(), lr=0.1)
    params = agc_parameters(model)
    handle = attach_agc(opt, params, clip_factor=0.001)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)) * 100, torch.tensor([0, 1, 2, 0]))
    loss.backward()
    weight_norms = [unitwise_norm(p.detach()).clamp(min=1e-3) for p in params]  # before the step changes them
    opt.step()
    for p, w_norm in zip(params, weight_norms, strict=True):  # the hook clipped before the step
        assert (unitwise_norm(p.grad) / w_norm <= 0.001 * (1 + 1e-4)).all()
    assert unitwise_norm(model.head.fc.weight.grad).max() > 0.001 * unitwise_norm(model.head.fc.weight).max()
    handle.remove()
    assert not opt._optimizer_step_pre_hooks


def test_agc_rejects_bad_arguments():
    with pytest.raises(ValueError, match="clip_factor"):
        adaptive_clip_grad_([], clip_factor=0)


# --- signal propagation --------------------------------------------------------------------------------------------


def test_signal_cli_writes_csv_and_png(tmp_path, capsys):
    assert main(["signal", "resnet50", "nf_resnet50", "--res", "64", "--batch", "4", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "signal.csv")))
    assert {r["model"] for r in rows} == {"resnet50", "nf_resnet50"}
    assert sum(r["model"] == "nf_resnet50" for r in rows) == 16  # one row per residual block
    assert (tmp_path / "signal.png").stat().st_size > 10_000
    nf = [r for r in rows if r["model"] == "nf_resnet50"]
    # within a stage, the variance grows as the α/β bookkeeping expects (by α² per block, relative to the first)
    for start, end in ((0, 3), (3, 7), (7, 13), (13, 16)):
        stage = nf[start:end]
        for r in stage:
            measured = float(r["var"]) / float(stage[0]["var"])
            expected = float(r["expected_var"]) / float(stage[0]["expected_var"])
            assert measured == pytest.approx(expected, rel=0.05)
    assert all(math.isfinite(float(r["mean_sq"])) for r in rows)
    # acceptance: at every block the variance is within 2× of the analytic value
    assert all(0.5 <= float(r["var"]) / float(r["expected_var"]) <= 2.0 for r in nf)


def test_signal_cli_bad_input():
    assert main(["signal", "resnet50", "--res", "8"]) == 2


def test_timm_form_of_nf_resnet50_departs_from_the_analytic_variance():
    """timm's nf_resnet50 (γ folded into the stem conv too, pooled shortcuts), which ``from_timm`` builds so its weights
    load, does not follow the bookkeeping: the stem carries ×γ² and every pooled transition shrinks the variance."""
    from convscale.bench.signal_propagation import signal_propagation

    model = convscale.create_model("nf_resnet50", drop_path_rate=0.0, **timm_form("nf_resnet50"))
    ratios = [r.var / r.expected_var for r in signal_propagation(model, res=64, batch=4)]
    assert ratios[0] > 2.0 and ratios[-1] < 0.5


def test_timm_nf_resnet_weights_load_only_into_timm_form(tmp_path):
    form = timm_form("test_nf_resnet")
    timm_model = convscale.create_model("test_nf_resnet", **form).eval()
    key_map = timm_key_map(timm_model)
    save_file({key_map[k]: v.contiguous() for k, v in timm_model.state_dict().items()}, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="from_timm"):
        convscale.create_model("test_nf_resnet", pretrained=tmp_path / "w.safetensors")
    model = convscale.create_model("test_nf_resnet", pretrained=tmp_path / "w.safetensors", **form).eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(model(x), timm_model(x), rtol=0, atol=0)

"""The registry and create_model: what users type, and the errors they get when it is wrong."""

import pytest
import torch
from safetensors.torch import save_file

import convscale
from convscale.config import ModelConfig
from convscale.interop import from_timm, timm_key_map
from convscale.registry import register_model


def test_unknown_name_names_the_closest():
    with pytest.raises(ValueError, match="did you mean efficientnet_b0"):
        convscale.create_model("efficientnet_bo")
    with pytest.raises(ValueError, match="did you mean tf_efficientnetv2_s"):
        convscale.create_model("tf_efficientnet_v2_s")
    with pytest.raises(ValueError, match="unknown model 'zzz'"):
        convscale.model_info("zzz")


def test_list_models_pattern():
    assert convscale.list_models("tf_efficientnetv2_b*") == [f"tf_efficientnetv2_b{i}" for i in range(4)]
    assert "test_efficientnet" not in convscale.list_models(include_tiny=False)
    assert len(convscale.list_models("efficientnet_b*")) == 8


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register_model("efficientnet_b0", "efficientnet", ModelConfig(), lambda cfg, **kw: None)


@pytest.mark.parametrize("bad", [-3, 2.5, True, "10"])
def test_num_classes_must_be_a_non_negative_int(bad):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 0"):
        convscale.create_model("test_efficientnet", num_classes=bad)


def test_num_classes_zero_gives_the_pooled_features():
    model = convscale.create_model("test_efficientnet", num_classes=0).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, model.num_features)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_chans": 0}, "in_chans must be a positive integer"),
        ({"drop_rate": 1.5}, "drop_rate must be a number in"),
        ({"drop_path_rate": -0.1}, "drop_path_rate must be a number in"),
        ({"widht_mult": 2.0}, "has no setting widht_mult"),
        ({"out_indices": (1,)}, "out_indices applies only with features_only"),
        ({"features_only": True, "out_indices": (9,)}, "out_indices must be"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        convscale.create_model("test_efficientnet", **kwargs)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((3, 64, 64), "expected a 4-D input"),
        ((1, 1, 64, 64), "expected 3 input channels"),
        ((1, 4, 64, 64), "expected 3 input channels"),
    ],
)
def test_bad_input_tensor(shape, message):
    model = convscale.create_model("test_efficientnet")
    with pytest.raises(ValueError, match=message):
        model(torch.randn(*shape))
    with pytest.raises(ValueError, match=message):
        convscale.create_model("test_efficientnet", features_only=True)(torch.randn(*shape))


def test_in_chans_and_overrides():
    model = convscale.create_model("test_efficientnet", in_chans=1, num_classes=3, act_layer="relu", drop_rate=0.0)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 3)
    assert isinstance(model.stem.act, torch.nn.ReLU)
    assert model.cfg.drop_rate == 0.0


def _timm_state_dict(name: str, num_classes: int = 1000) -> dict[str, torch.Tensor]:
    model = convscale.create_model(name, num_classes=num_classes)
    mapping = timm_key_map(model)
    return {mapping[k]: v for k, v in model.state_dict().items()}, model


@pytest.mark.parametrize("fmt", ["convscale", "timm"])
@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_pretrained_from_local_file(tmp_path, fmt, suffix):
    timm_sd, source = _timm_state_dict("test_efficientnetv2")
    sd = source.state_dict() if fmt == "convscale" else timm_sd
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save({"state_dict": sd}, path)
    model = convscale.create_model("test_efficientnetv2", pretrained=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source.eval()(x))


def test_pretrained_with_another_num_classes_keeps_a_fresh_head(tmp_path):
    source = convscale.create_model("test_efficientnet")
    path = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(path))
    model = convscale.create_model("test_efficientnet", num_classes=4, pretrained=path)
    assert model.head.fc.weight.shape == (4, 64)
    torch.testing.assert_close(model.stem.conv.weight, source.stem.conv.weight)


def test_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        convscale.create_model("test_efficientnet", pretrained=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="test_efficientnet has no published weights"):
        convscale.create_model("test_efficientnet", pretrained=True)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint file at typo\.pth"):
        convscale.create_model("test_efficientnet", pretrained="typo.pth")
    other = tmp_path / "other.safetensors"
    save_file(convscale.create_model("test_efficientnetv2").state_dict(), str(other))
    with pytest.raises(ValueError, match="matches neither the convscale nor the timm layout"):
        convscale.create_model("test_efficientnet", pretrained=other)
    pickled = tmp_path / "obj.pth"
    torch.save({"state_dict": object()}, pickled)
    with pytest.raises(ValueError, match="holds pickled Python objects"):  # issue 29's wording (defect 7)
        convscale.create_model("test_efficientnet", pretrained=pickled)


def test_from_timm_shape_mismatch_names_key_and_shapes():
    sd, _ = _timm_state_dict("tf_efficientnetv2_b0")
    sd["blocks.3.0.conv_dw.weight"] = torch.zeros(1, 1, 3, 3)
    with pytest.raises(ValueError, match=r"blocks\.3\.0\.conv_dw\.weight.*\(1, 1, 3, 3\).*\(192, 1, 3, 3\)"):
        from_timm("tf_efficientnetv2_b0", sd)


def test_from_timm_missing_and_extra_keys():
    sd, _ = _timm_state_dict("efficientnet_b0")
    del sd["conv_head.weight"]
    with pytest.raises(ValueError, match=r"no 'conv_head\.weight'"):
        from_timm("efficientnet_b0", sd)
    sd, _ = _timm_state_dict("efficientnet_b0")
    sd["blocks.9.0.conv_pw.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="has no place in the model"):
        from_timm("efficientnet_b0", sd)


def test_from_timm_reads_num_classes_and_tags():
    sd, _ = _timm_state_dict("efficientnet_b0", num_classes=10)
    model = from_timm("efficientnet_b0.ra_in1k", sd)
    assert model.num_classes == 10
    with pytest.raises(ValueError, match="has no timm counterpart"):
        from_timm("efficientnetv2_b0", sd)
    with pytest.raises(ValueError, match="unknown model"):
        from_timm("resnet9000", sd)

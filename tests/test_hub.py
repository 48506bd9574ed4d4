"""Published weights: the typed table, ``create_model(pretrained=...)`` through a Hugging Face cache written here (the
hub's own layout, no network), torchvision's weights from a local HTTP server, and the failures a user meets."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import convscale
from conftest import ALL_MODELS, parity_fixture, write_hub_file
from convscale.interop import timm_key_map, torchvision_key_map
from convscale.registry import counterpart
from convscale.weights import default_tag, get_weights, key_digest, list_pretrained, weights_for

pytest.importorskip("huggingface_hub")

# --- the table ---


def test_every_weights_record_names_a_registered_model_and_maps_key_for_key():
    """For each of the 176 records, convscale's model (in the source's form, with the weights' classes) mapped into
    the source's key names has exactly the reference state dict's names and shapes (scripts/update_weights.py
    recorded their digest from timm's / torchvision's own model)."""
    names = list_pretrained()
    assert len(names) >= 170
    mapped = {"timm": timm_key_map, "torchvision": torchvision_key_map}
    for full in names:
        w = get_weights(full)
        assert w.model in ALL_MODELS and w.name == full
        with torch.device("meta"):
            model = convscale.create_model(w.model, num_classes=w.num_classes, **w.form)
        key_map = mapped[w.source](model)
        assert key_digest((key_map[k], v.shape) for k, v in model.state_dict().items()) == w.keys, full


def test_the_digest_can_fail():
    with torch.device("meta"):
        model = convscale.create_model("efficientnet_b0", num_classes=10)
    key_map = timm_key_map(model)
    assert (
        key_digest((key_map[k], v.shape) for k, v in model.state_dict().items()) != get_weights("efficientnet_b0").keys
    )


@pytest.mark.parametrize(
    ("model", "tag"),
    [
        ("efficientnet_b0", "ra_in1k"),
        ("tf_efficientnetv2_s", "in21k_ft_in1k"),
        ("convnext_tiny", "in12k_ft_in1k"),
        ("dm_nfnet_f0", "dm_in1k"),
        ("repvgg_a0", "rvgg_in1k"),
        ("mobilenetv3_large_100", "ra_in1k"),
        ("ghostnet_100", "in1k"),
        ("resnet50", "a1_in1k"),
        ("shufflenet_v2_x1_0", "tv_in1k"),  # timm hosts none: torchvision's
    ],
)
def test_default_tags_are_timms(model, tag):
    assert default_tag(model) == tag
    assert weights_for(model)[0].tag == tag


def test_records_carry_what_evaluation_needs():
    w = get_weights("dm_nfnet_f0")
    assert (w.input_size, w.test_input_size, w.crop_pct, w.crop_mode) == (192, 256, 0.9, "squash")
    assert (w.top1, w.top1_res, w.license) == (83.486, 256, "apache-2.0")
    assert w.hub_id == "timm/dm_nfnet_f0.dm_in1k" and w.filename == "model.safetensors"
    v2 = get_weights("tf_efficientnetv2_s")
    assert v2.mean == (0.5, 0.5, 0.5) and v2.test_input_size == 384 and v2.crop_pct == 1.0
    tv = get_weights("mobilenetv3_large_100.tv2_in1k")
    assert tv.url.startswith("https://download.pytorch.org/models/") and tv.sha256 == "5c1a4163"
    assert tv.form == {"bn_eps": 1e-3, "bn_momentum": 0.01} and tv.top1 == 75.274
    assert tv.transforms().resized(500, 375) == (309, 232)  # torchvision's resize 232, crop 224
    assert w.classes[:2] == ["tench", "goldfish"] and len(w.classes) == 1000
    assert get_weights("convnext_tiny.fb_in22k").classes is None  # ImageNet-21k names are not bundled


def test_squash_and_center_transforms_are_timms():
    """timm: scale = floor(size / crop_pct); center resizes the short side (the long one truncated), squash both."""
    w = get_weights("dm_nfnet_f0")
    t = w.transforms()
    assert t.resized(640, 480) == (284, 284)  # floor(256 / 0.9)
    x = t(__import__("PIL.Image", fromlist=["Image"]).new("RGB", (640, 480)))
    assert x.shape == (3, 256, 256)
    c = get_weights("resnet50").transforms()  # test 288, crop 1.0
    assert c.resized(640, 480) == (384, 288) and c.resized(333, 500) == (288, 432)


def test_unknown_tags_and_models_say_what_exists():
    with pytest.raises(ValueError, match="its tags: ra_in1k, ra4_e3600_r224_in1k"):
        convscale.create_model("efficientnet_b0", pretrained="in22k")
    with pytest.raises(ValueError, match="did you mean"):
        get_weights("efficientnet_b9")
    with pytest.raises(ValueError, match="no published weights"):
        get_weights("efficientnetv2_s")
    with pytest.raises(ValueError, match="weights of convnext_tiny, not of convnext_atto"):
        convscale.create_model("convnext_atto", pretrained="convnext_tiny.fb_in1k")


# --- loading through the hub cache ---


def timm_fixture_in_cache(cache: Path, fixture: str) -> tuple[str, torch.Tensor, torch.Tensor]:
    name, weights, x, expected = parity_fixture(fixture)
    w = get_weights(name)
    write_hub_file(cache, w.hub_id, "model.safetensors", lambda p: save_file(weights, str(p)))
    return name, x, expected


TIMM_FIXTURES = [
    "timm__efficientnet_b0",
    "timm__tf_efficientnet_b0",
    "timm__tf_efficientnetv2_s",
    "timm__convnext_atto",
    "timm__convnext_tiny",
    "timm__resnet50",
    "timm__dm_nfnet_f0",
    "timm__nf_resnet50",  # timm's form: create_model applies it
    "timm__mobilenetv2_100",
    "timm__mobilenetv3_large_100",
    "timm__repvgg_a0",
    "timm__ghostnet_100",
]


@pytest.mark.parametrize("fixture", TIMM_FIXTURES)
def test_pretrained_true_loads_the_default_tag_from_the_hub_cache(hub_cache, fixture):
    name, x, expected = timm_fixture_in_cache(hub_cache, fixture)
    model = convscale.create_model(name, pretrained=True).eval()
    assert model.pretrained_cfg == get_weights(name)
    with torch.no_grad():
        got = model(x).double()
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


def test_a_tag_a_full_name_and_a_named_model_load_the_same(hub_cache):
    name, x, _expected = timm_fixture_in_cache(hub_cache, "timm__efficientnet_b0")
    models = [
        convscale.create_model(name, pretrained="ra_in1k"),
        convscale.create_model(name, pretrained="efficientnet_b0.ra_in1k"),
        convscale.create_model("efficientnet_b0.ra_in1k", pretrained=True),
    ]
    with torch.no_grad():
        outs = [m.eval()(x) for m in models]
    assert all(torch.equal(outs[0], o) for o in outs[1:])


def test_fine_tuning_keeps_the_trunk_and_gets_a_fresh_classifier(hub_cache):
    name, _, _ = timm_fixture_in_cache(hub_cache, "timm__efficientnet_b0")
    full = convscale.create_model(name, pretrained=True)
    ft = convscale.create_model(name, pretrained=True, num_classes=7)
    assert ft.head.fc.out_features == 7
    assert torch.equal(ft.stem.conv.weight, full.stem.conv.weight)


def test_hf_hub_repo_with_its_config(hub_cache):
    name, x, expected = parity_fixture("timm__convnext_atto")[0], *parity_fixture("timm__convnext_atto")[2:]
    _, weights, _, _ = parity_fixture("timm__convnext_atto")
    repo = "someone/my-convnext"
    write_hub_file(hub_cache, repo, "model.safetensors", lambda p: save_file(weights, str(p)))
    config = '{"architecture": "convnext_atto", "num_classes": 1000, "pretrained_cfg": {"input_size": [3, 256, 256], "crop_pct": 0.95, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}'  # noqa: E501
    write_hub_file(hub_cache, repo, "config.json", lambda p: p.write_text(config))
    model = convscale.create_model(name, pretrained=f"hf-hub:{repo}").eval()
    with torch.no_grad():
        got = model(x).double()
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
    t = model.pretrained_cfg.transforms()
    assert (t.res, t.crop_pct, t.mean) == (256, 0.95, (0.5, 0.5, 0.5))


def test_offline_and_not_cached_is_one_line_naming_the_repo(hub_cache):
    with pytest.raises(FileNotFoundError) as e:
        convscale.create_model("efficientnet_b0", pretrained=True)
    message = str(e.value)
    assert "\n" not in message
    assert "timm/efficientnet_b0.ra_in1k" in message and "hf download" in message and "HF_HUB_OFFLINE" in message


def test_environment_variables_are_honoured(tmp_path):
    """HF_HOME and HF_HUB_OFFLINE as a user sets them (read by huggingface_hub at import: a fresh process)."""
    _, weights, _, _ = parity_fixture("timm__ghostnet_100")
    write_hub_file(
        tmp_path / "hub", "timm/ghostnet_100.in1k", "model.safetensors", lambda p: save_file(weights, str(p))
    )
    code = (
        "import convscale, torch; m = convscale.create_model('ghostnet_100', pretrained=True); "
        "print(float(m.head.fc.weight.double().sum()))"
    )
    env = {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert abs(float(out.stdout) - float(weights["classifier.weight"].double().sum())) < 1e-6
    env.pop("HF_HOME")
    env["HOME"] = str(tmp_path / "elsewhere")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "not in the Hugging Face cache" in out.stderr


def test_without_huggingface_hub_one_line_names_the_extra(hub_cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(
        ImportError,
        match=r"^downloading from the Hugging Face hub needs huggingface_hub: pip install 'convscale\[hub\]'$",
    ):
        convscale.create_model("efficientnet_b0", pretrained=True)


def test_cli_says_one_line_when_offline(hub_cache, capsys):
    from convscale.cli import main

    assert main(["eval", "--model", "efficientnet_b0", "--pretrained", "--data", "synthetic-shapes"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "timm/efficientnet_b0.ra_in1k" in err


# --- torchvision's weights, from their address ---


def test_torchvision_weights_download_check_and_load(file_server, tmp_path, monkeypatch):
    _name, weights, x, expected = parity_fixture("torchvision__shufflenet_v2_x1_0")
    blob_path = tmp_path / "tv.pth"
    torch.save(weights, blob_path)
    blob = blob_path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    w = get_weights("shufflenet_v2_x1_0")
    file_name = f"shufflenetv2_x1-{digest[:10]}.pth"
    file_server.files["/models/" + file_name] = blob
    from dataclasses import replace

    import convscale.weights as table

    local = replace(w, url=f"{file_server.url}/models/{file_name}", sha256=digest[:10])
    monkeypatch.setattr(table, "get_weights", lambda *a, **k: local)
    import convscale.weights.hub as hub

    monkeypatch.setattr(hub, "get_weights", lambda *a, **k: local)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    model = convscale.create_model("shufflenet_v2_x1_0", pretrained=True).eval()
    with torch.no_grad():
        got = model(x).double()
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
    assert (tmp_path / "torch" / "hub" / "checkpoints" / file_name).is_file()
    requests = len(file_server.log)
    convscale.create_model("shufflenet_v2_x1_0", pretrained=True)
    assert len(file_server.log) == requests  # cached: no network work


def test_every_model_with_a_counterpart_that_publishes_weights_has_a_record():
    """Every registered model that timm names has its weights in the table, except those timm hosts none for."""
    no_weights = {"efficientnet_b6", "efficientnet_b7"} | {f"efficientnetv2_{s}" for s in ("s", "m", "l", "xl")}
    no_weights |= {f"nfnet_f{i}" for i in range(8)}
    for name in ALL_MODELS:
        timm = counterpart(name, "timm")
        tv = counterpart(name, "torchvision")
        named = (timm is not None and timm.name) or (tv is not None and tv.name)
        if named and name not in no_weights:
            assert default_tag(name), name


def test_eval_and_predict_published_weights_with_their_own_transform(hub_cache, tmp_path, capsys):
    """`convscale eval --model NAME --pretrained --data DIR`: ImageNet's WordNet-id folders give the labels (a subset
    is fine), the weights' transform (test size, crop, interpolation) is used, and predict prints ImageNet names."""
    from PIL import Image

    from convscale.cli import main

    _, weights, _, _ = parity_fixture("timm__ghostnet_100")
    repo = get_weights("ghostnet_100").hub_id
    write_hub_file(hub_cache, repo, "model.safetensors", lambda p: save_file(weights, str(p)))
    for wnid in ("n01440764", "n02102040"):
        folder = tmp_path / "nette" / "val" / wnid
        folder.mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (90, 70), (40 * i, 90, 200)).save(folder / f"{i}.png")
    data = tmp_path / "nette"
    assert main(["eval", "--model", "ghostnet_100", "--pretrained", "--data", str(data), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "ghostnet_100.in1k on" in out and "at 224 px (crop 0.875)" in out and "(4 of 4 images)" in out
    image = data / "val" / "n01440764" / "0.png"
    assert main(["predict", "--model", "ghostnet_100", "--pretrained", "in1k", str(image)]) == 0
    line = capsys.readouterr().out.strip()
    names = set(get_weights("ghostnet_100").classes)
    predicted = [part.rsplit(" ", 1)[0] for part in line.split(": ", 1)[1].split(", ")]
    assert len(predicted) == 5 and all(p in names for p in predicted)
    assert main(["eval", "runs/x", "--model", "ghostnet_100", "--data", str(data)]) == 2
    assert "not both" in capsys.readouterr().err

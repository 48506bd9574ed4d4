"""Export: every tiny variant and every parity fixture's model to ONNX, run in ONNX Runtime against PyTorch (fp32,
1e-4 of the output scale) — dynamic batch, height and width at two sizes each, 'same' padding at an odd size — plus
.pt2, the
recorded preprocessing, the baked-in normalization, and the failures a user meets (one line, exit 2)."""

from __future__ import annotations

import sys

import pytest
import torch

import convscale
from conftest import TINY_MODELS, is_big, make_image_folder, parity_fixture
from convscale.cli import main
from convscale.deploy.exporter import ExportSpec, export, prepare_export, read_metadata
from convscale.deploy.runtimes import check_onnx
from convscale.interop import from_timm, from_torchvision

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SAME_PADDING = {"test_tf_efficientnetv2", "test_nfnet"}


def run_onnx(path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want.double()).abs().max() / want.double().abs().max())


@pytest.mark.parametrize("name", TINY_MODELS)
def test_every_tiny_variant_exports_and_matches_in_onnx_runtime(name, tmp_path):
    """One graph, dynamic in batch, height and width, at two batches and two sizes; 113 x 97 is odd, where 'same'
    padding (test_tf_efficientnetv2, test_nfnet) pads unevenly, its pads computed in the graph from the shape."""
    model, spec = prepare_export(name, res=64, batch="dynamic", dynamic_size=True)
    path = export(model, tmp_path / f"{name}.onnx", spec)
    for batch, (h, w) in ((1, (64, 64)), (3, (113, 97))):
        x = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            want = model.eval()(x)
        assert relative(run_onnx(path, x), want) <= 1e-4, (name, batch, h, w)


@pytest.mark.parametrize("name", sorted(SAME_PADDING))
def test_same_padding_at_a_fixed_odd_size_becomes_constant_pads(name, tmp_path):
    model, spec = prepare_export(name, res=113, batch=2)
    path = export(model, tmp_path / f"{name}.onnx", spec)
    x = torch.randn(2, 3, 113, 113)
    with torch.no_grad():
        want = model.eval()(x)
    assert relative(run_onnx(path, x), want) <= 1e-4
    with pytest.raises(Exception):  # noqa: B017 - ONNX Runtime's own error: the graph's size is fixed
        run_onnx(path, torch.randn(2, 3, 97, 97))


def _fixture_model(fixture: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    name, weights, x, expected = parity_fixture(fixture)
    load = from_torchvision if fixture.startswith("torchvision__") else from_timm
    return load(name, weights).eval(), x, expected


FIXTURES = [
    "timm__efficientnet_b0", "timm__tf_efficientnet_b0", "timm__tf_efficientnetv2_s", "timm__convnext_atto",
    "timm__convnext_tiny", "timm__resnet50", "timm__dm_nfnet_f0", "timm__nf_resnet50", "timm__mobilenetv2_100",
    "timm__mobilenetv3_large_100", "timm__repvgg_a0", "timm__ghostnet_100", "torchvision__shufflenet_v2_x1_0",
    "torchvision__mobilenet_v2", "torchvision__mobilenet_v3_large", "torchvision__mobilenet_v3_small",
]  # fmt: skip


@pytest.mark.parametrize(
    "fixture",
    [pytest.param(f, marks=pytest.mark.slow) if f.startswith("timm") and is_big(f[6:]) else f for f in FIXTURES],
)
def test_parity_models_reproduce_the_reference_logits_through_onnx(fixture, tmp_path):
    """The reference library's logits, reproduced by the fused graph in ONNX Runtime (dm_nfnet_f0 at 113 px)."""
    model, x, expected = _fixture_model(fixture)
    name = fixture.split("__")[1]
    spec = ExportSpec(name, "parity", x.shape[-1], x.shape[0], (0.0,) * 3, (1.0,) * 3, 1.0, "center", "bicubic",
                      False, True, expected.shape[1])  # fmt: skip
    path = export(model, tmp_path / "m.onnx", spec)
    assert relative(run_onnx(path, x), expected) <= 1e-4


def test_normalization_in_the_graph_and_the_recorded_preprocessing(tmp_path):
    model, spec = prepare_export("test_convnext", res=64, batch=2, normalize=True)
    path = export(model, tmp_path / "n.onnx", spec)
    x = torch.rand(2, 3, 64, 64)
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        want = model.eval()((x - mean) / std)
    assert relative(run_onnx(path, x), want) <= 1e-4
    meta = read_metadata(path)
    assert meta["model"] == "test_convnext" and meta["normalize_in_graph"] and meta["res"] == 64
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["crop_pct"] == 0.875
    assert check_onnx(path, model, spec) <= 1e-4


def test_a_run_exports_with_its_classes_and_policy(tmp_path, capsys):
    from convscale.train import TrainConfig, fit

    data = make_image_folder(tmp_path / "data")
    cfg = TrainConfig(model="test_resnet", data=str(data), epochs=1, batch_size=16, workers=0, out=str(tmp_path))
    run = fit(cfg, log=lambda *_: None).run_dir
    out = tmp_path / "run.onnx"
    assert main(["export", str(run), "--out", str(out), "--batch", "dynamic", "--dynamic-size"]) == 0
    line = capsys.readouterr().out  # --check compared at 64 px and at 49 x 54
    assert "max relative error" in line and "batch dynamic" in line and "dynamic size (example 64 px)" in line
    meta = read_metadata(out)
    assert meta["dynamic_size"] and meta["classes"] == ["circle", "star", "triangle"]
    assert meta["res"] == 64 and meta["weights"] == str(run)


def test_pt2_round_trip(tmp_path):
    model, spec = prepare_export("test_tf_efficientnetv2", res=64, batch=2, dynamic_size=True)
    path = export(model, tmp_path / "m.pt2", spec, fmt="pt2")
    program = torch.export.load(str(path))
    for size in (64, 81):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            assert relative(program.module()(x), model.eval()(x)) <= 1e-5
    assert read_metadata(path)["model"] == "test_tf_efficientnetv2"


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "x.onnx")
    cases = [
        (["export", "test_resnet", "--format", "tflite", "--out", out], "invalid choice"),
        (["export", "test_resnet", "--opset", "9", "--out", out], "opset 9"),
        (["export", "test_resnet", "--batch", "many", "--out", out], "--batch"),
        (["export", str(tmp_path), "--out", out], "not a training run"),
        (["export", "resnet", "--out", out], "did you mean"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, (argv, err)
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", "test_resnet", "--out", out]) == 2
    assert "pip install 'convscale[onnx]'" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*tmp*"))  # nothing half-written


def test_the_package_exports_the_function():
    assert convscale.export is export

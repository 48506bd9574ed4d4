"""``deploy.optimize`` and ``convscale deploy``: every runtime checked against fp32 and timed, the fastest correct one
kept and written with its report; int8 through ONNX Runtime with calibration images and the top-1 change."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import convscale
from conftest import make_image_folder
from convscale.cli import main
from convscale.deploy import optimize, top1_on
from convscale.deploy.exporter import read_metadata
from convscale.deploy.runtimes import build_runner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
QUICK = {"min_time": 0.05}


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    from convscale.train import TrainConfig, fit

    tmp = tmp_path_factory.mktemp("deploy")
    data = make_image_folder(tmp / "data")
    cfg = TrainConfig(model="test_resnet", data=str(data), epochs=2, batch_size=16, workers=0, out=str(tmp), lr=5e-3)
    return fit(cfg, log=lambda *_: None).run_dir


def test_optimize_keeps_the_fastest_within_tolerance():
    model = convscale.create_model("test_efficientnet").eval()
    r = optimize(model, torch.randn(4, 3, 64, 64), runtimes=("eager", "eager-bf16", "onnxruntime"), **QUICK)
    by = {c.runtime: c for c in r.candidates}
    assert by["eager"].kept and by["eager"].max_rel_error == 0.0
    assert by["onnxruntime"].max_rel_error <= 1e-4 and by["onnxruntime"].kept
    kept = [c for c in r.candidates if c.kept]
    assert r.choice == min(kept, key=lambda c: c.median_ms).runtime
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        want = r.fused(x)
    assert (r.runner.fn(x) - want).abs().max() <= 1e-3 * want.abs().max()


def test_a_zero_tolerance_leaves_only_exact_forms_and_a_top1_drop_excludes():
    model = convscale.create_model("test_resnet").eval()
    r = optimize(model, torch.randn(2, 3, 64, 64), runtimes=("eager", "onnxruntime"), tolerance=0.0, **QUICK)
    assert [c.runtime for c in r.candidates if c.kept] == ["eager"]  # ONNX Runtime's rounding differs by ~1e-7
    scores = {}

    def top1(fn):  # a scorer that finds ONNX Runtime two points worse
        scores[fn] = 90.0 if len(scores) == 0 else 88.0
        return scores[fn]

    r = optimize(model, torch.randn(2, 3, 64, 64), runtimes=("eager", "onnxruntime"), top1=top1, **QUICK)
    by = {c.runtime: c for c in r.candidates}
    assert by["onnxruntime"].top1 == 88.0 and not by["onnxruntime"].kept and r.choice == "eager"


def test_a_runtime_that_is_not_installed_is_reported_not_chosen(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    model = convscale.create_model("test_resnet").eval()
    r = optimize(model, torch.randn(2, 3, 64, 64), runtimes=("onnxruntime",), **QUICK)
    by = {c.runtime: c for c in r.candidates}
    assert r.choice == "eager" and not by["onnxruntime"].kept and "convscale[onnx]" in by["onnxruntime"].note


def test_unknown_runtimes_are_refused():
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        build_runner("tensorrt", torch.nn.Identity(), torch.zeros(1), torch.device("cpu"))


def test_top1_scorer_ignores_padding():
    x, y = torch.zeros(4, 3, 8, 8), torch.tensor([0, 1, -1, -1])
    score = top1_on([(x, y)])
    assert score(lambda x: torch.tensor([[1.0, 0.0]] * 4)) == 50.0


def test_deploy_a_run_with_int8(folder_run, tmp_path, capsys):
    out = tmp_path / "dep"
    argv = ["deploy", str(folder_run), "--out", str(out), "--runtimes", "eager,onnxruntime", "--int8", "--min-time",
            "0.05", "--batch", "4"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "chosen:" in text and "int8: model.int8.onnx" in text
    report = json.loads((out / "deploy.json").read_text())
    assert (out / report["file"]).is_file() and (out / "report.csv").is_file() and (out / "model.int8.onnx").is_file()
    q = report["int8"]
    assert q["top1_fp32"] is not None and abs(q["top1_int8"] - q["top1_fp32"]) <= 20  # 12 val images: coarse
    assert q["calibration_images"] >= 4 and q["speedup_vs_fp32_onnx"] > 0
    assert {c["runtime"] for c in report["candidates"]} == {"eager", "onnxruntime"}
    # built by the runtime table's onnxruntime-int8, with the deployment's spec recorded in it as in the fp32 file
    assert (
        read_metadata(out / "model.int8.onnx")
        == read_metadata(out / "model.fp32.onnx")
        == report["spec"] | {"format": "convscale-export/1"}
    )


def test_a_chosen_onnx_int8_form_records_the_deployment_spec(folder_run, tmp_path, capsys):
    """The table's onnxruntime-int8 builds its file with a neutral spec; the deployed file carries the deployment's
    (it had none: ``read_metadata`` failed on it)."""
    out = tmp_path / "dep"
    argv = ["deploy", str(folder_run), "--out", str(out), "--runtimes", "onnxruntime-int8", "--min-time", "0.05",
            "--batch", "4", "--max-top1-drop", "100"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((out / "deploy.json").read_text())
    assert report["choice"] == "onnxruntime-int8" and report["file"] == "model.int8.onnx"
    assert read_metadata(out / "model.int8.onnx") == report["spec"] | {"format": "convscale-export/1"}


def test_deploy_bad_input_is_one_line(tmp_path, capsys):
    for argv, message in [
        (["deploy", "test_resnet", "--out", str(tmp_path), "--runtimes", "eager,tensorrt"], "unknown runtime"),
        (["deploy", "test_resnet", "--out", str(tmp_path), "--int8", "--runtimes", "eager"], "--calibrate"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err


def test_bench_runtime_table(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "test_resnet", "--runtime", "eager,onnxruntime", "--res", "64", "--batch", "2", "--min-time",
            "0.05", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = (out / "runtimes.csv").read_text().splitlines()
    assert rows[0].startswith("model,runtime,res,batch,gmacs") and len(rows) == 3
    eager, ort = (dict(zip(rows[0].split(","), r.split(","), strict=True)) for r in rows[1:])
    assert eager["runtime"] == "eager" and float(eager["vs_eager"]) == 1.0 and float(eager["max_rel_error"]) == 0.0
    assert ort["runtime"] == "onnxruntime" and float(ort["max_rel_error"]) <= 1e-4 and float(ort["gmac_s"]) > 0
    assert "vs eager" in capsys.readouterr().out
    assert main(["bench", "test_resnet", "--runtime", "tvm"]) == 2
    assert "unknown runtime 'tvm'" in capsys.readouterr().err


def test_runners_do_not_change_the_model_they_were_built_from():
    """Module.to converts in place: each runner works on its own copy, so one's memory format is not another's."""
    from convscale.deploy import fuse

    fused = fuse(convscale.create_model("test_resnet").eval())
    weight = fused.stem.conv.weight
    layout = weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64)
    for name in ("eager", "onnxruntime"):
        build_runner(name, fused, x, torch.device("cpu"))
    assert fused.stem.conv.weight is weight and weight.dtype == torch.float32
    assert weight.is_contiguous(memory_format=torch.channels_last) == layout

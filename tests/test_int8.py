"""int8 as deployment candidates: the compiler's (PT2E), ONNX Runtime's (QDQ) and OpenVINO's (NNCF), calibrated on
a run's own images and kept only within the top-1 guard; a missing library or a quantizer that refuses is a note;
``deploy.json`` records the choice, its settings, the CPU's instruction sets and the libraries' versions."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import convscale
from conftest import make_image_folder
from convscale.cli import main
from convscale.deploy import optimize
from convscale.deploy.quantize import QuantSettings
from convscale.deploy.runtimes import INT8

pytest.importorskip("onnxruntime")
QUICK = {"min_time": 0.05}
INT8_RUNTIMES = ",".join(("eager", *INT8))


@pytest.fixture(scope="module", params=["test_resnet", "test_efficientnet"])
def trained_run(request, tmp_path_factory):
    from convscale.train import TrainConfig, fit

    tmp = tmp_path_factory.mktemp(request.param)
    data = make_image_folder(tmp / "data", per_class=24, val_per_class=12)
    cfg = TrainConfig(model=request.param, data=str(data), epochs=6, batch_size=16, workers=0, out=str(tmp), lr=5e-3)
    return fit(cfg, log=lambda *_: None).run_dir


def test_each_int8_candidate_is_kept_within_the_guard_or_says_why(trained_run, tmp_path, capsys):
    out = tmp_path / "dep"
    argv = ["deploy", str(trained_run), "--out", str(out), "--runtimes", INT8_RUNTIMES, "--batch", "4",
            "--min-time", "0.05", "--calibration-images", "24"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "deploy.json").read_text())
    by = {c["runtime"]: c for c in report["candidates"]}
    fp32 = by["eager"]["top1"]
    assert fp32 is not None and report["calibration"]["images"] == 24
    measured = [by[r] for r in INT8 if not by[r]["note"]]
    assert len(measured) >= 2, {r: by[r]["note"] for r in INT8}  # ORT, OpenVINO at least (the test extra has both)
    for c in measured:
        assert c["precision"].startswith("int8") and "per-channel" in c["settings"] and c["agreement"] is not None
        within = c["top1"] >= fp32 - 1.0
        assert c["kept"] == within, c
        assert within or "points below fp32" in c["rejected"]
    for r in INT8:  # a runtime that was not measured says why in one line
        assert by[r]["note"] or by[r]["median_ms"] > 0
        assert "\n" not in by[r]["note"]
    chosen = by[report["choice"]]
    assert chosen["kept"] and report["precision"] == chosen["precision"] and report["settings"] == chosen["settings"]
    assert all((out / f).is_file() for f in report["files"])
    assert report["machine"]["isa"] is not None and report["machine"]["threads"] >= 1
    assert {"torch", "torchao", "openvino", "nncf", "onnxruntime"} <= set(report["versions"])
    assert "fp32" in report["peaks_gmac_s"]
    assert "chosen:" in capsys.readouterr().out


def test_without_a_validation_set_int8_is_measured_but_not_chosen():
    model = convscale.create_model("test_resnet").eval()
    x = torch.randn(2, 3, 64, 64)
    r = optimize(model, x, runtimes=("onnxruntime-int8",), calibration=[x], **QUICK)
    c = {c.runtime: c for c in r.candidates}["onnxruntime-int8"]
    assert c.median_ms > 0 and not c.kept and "validation" in c.rejected and r.choice == "eager"


def test_the_guard_allows_one_point_for_int8_and_half_a_point_otherwise():
    model = convscale.create_model("test_resnet").eval()
    x = torch.randn(2, 3, 64, 64)
    drops = {0: 0.0, 1: 0.8, 2: 0.8}  # eager, onnxruntime (fp32), onnxruntime-int8: in the order they are scored

    def top1(fn, seen=[]):  # noqa: B006 - the call count decides which runtime this is
        seen.append(fn)
        return 90.0 - drops[len(seen) - 1]

    r = optimize(model, x, runtimes=("onnxruntime", "onnxruntime-int8"), calibration=[x], top1=top1, **QUICK)
    by = {c.runtime: c for c in r.candidates}
    assert not by["onnxruntime"].kept and "allowed 0.5" in by["onnxruntime"].rejected
    assert by["onnxruntime-int8"].kept
    r = optimize(model, x, runtimes=("onnxruntime-int8",), calibration=[x], top1=lambda fn: 90.0, max_top1_drop=0.0,
                 **QUICK)  # fmt: skip
    assert {c.runtime: c for c in r.candidates}["onnxruntime-int8"].kept
    # with a validation set the answers decide, not the logits' distance: a zero tolerance no longer excludes
    r = optimize(model, x, runtimes=("onnxruntime",), tolerance=0.0, top1=lambda fn: 90.0, **QUICK)
    ort = {c.runtime: c for c in r.candidates}["onnxruntime"]
    assert ort.max_rel_error > 0.0 and ort.kept


def test_a_missing_library_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    monkeypatch.setitem(sys.modules, "torchao", None)
    model = convscale.create_model("test_resnet").eval()
    x = torch.randn(2, 3, 64, 64)
    r = optimize(model, x, runtimes=("openvino", "openvino-int8", "inductor-int8"), calibration=[x], **QUICK)
    by = {c.runtime: c for c in r.candidates}
    assert "convscale[openvino]" in by["openvino"].note and "convscale[openvino]" in by["openvino-int8"].note
    assert "convscale[int8]" in by["inductor-int8"].note and r.choice == "eager"


def test_a_quantizer_that_refuses_is_a_note_not_a_crash(monkeypatch):
    from convscale.deploy import quantize

    def refuses(*_args, **_kwargs):
        raise NotImplementedError("the quantizer has no rule for aten.weird_op")

    monkeypatch.setattr(quantize, "quantize_pt2e", refuses)
    model = convscale.create_model("test_resnet").eval()
    x = torch.randn(2, 3, 64, 64)
    r = optimize(model, x, runtimes=("inductor-int8",), calibration=[x], **QUICK)
    c = {c.runtime: c for c in r.candidates}["inductor-int8"]
    assert "aten.weird_op" in c.note and not c.kept and r.choice == "eager"


def test_int8_without_calibration_images_is_a_note():
    model = convscale.create_model("test_resnet").eval()
    r = optimize(model, torch.randn(2, 3, 64, 64), runtimes=("onnxruntime-int8",), **QUICK)
    assert "calibration" in {c.runtime: c for c in r.candidates}["onnxruntime-int8"].note


def test_quant_settings_name_what_they_keep_and_refuse_what_a_tool_cannot():
    from convscale.deploy.fuse import fuse

    model = fuse(convscale.create_model("test_resnet").eval())
    s = QuantSettings(keep_ends=True)
    kept = s.kept(model)
    assert kept[0] == "stem.conv" and isinstance(dict(model.named_modules())[kept[-1]], torch.nn.Linear)
    assert "kept in higher precision: stem.conv" in s.describe(model)
    with pytest.raises(ValueError, match="not a module of the model"):
        QuantSettings(keep=("nope",)).kept(model)
    x = torch.randn(2, 3, 64, 64)
    r = optimize(model, x, runtimes=("inductor-int8",), calibration=[x], settings=QuantSettings(per_channel=False))
    assert "per channel" in {c.runtime: c for c in r.candidates}["inductor-int8"].note


def test_per_block_sensitivity_and_the_blocks_kept_for_the_guard():
    from convscale.deploy.fuse import fuse
    from convscale.deploy.quantize import quantize_pt2e
    from convscale.deploy.sensitivity import blocks, keep_for_guard, sensitivity

    pytest.importorskip("torchao")
    model = fuse(convscale.create_model("test_resnet").eval())
    units = blocks(model)
    assert units[0].startswith("stem") and units[-1].startswith("head") and any(".0" in u for u in units)
    x = torch.randn(4, 3, 64, 64)
    everything_kept = quantize_pt2e(model, x, [x], QuantSettings(keep=tuple(units)))
    assert not any("quantize" in str(n.target) for n in everything_kept.graph.nodes)  # names match the graph's
    val = [(torch.randn(4, 3, 64, 64), torch.randint(0, 1000, (4,))) for _ in range(2)]
    rows = sensitivity(model, [x], val)
    assert sorted(r.block for r in rows) == sorted(units) and all(0 <= r.agreement <= 100 for r in rows)
    assert [r.top1_drop for r in rows] == sorted((r.top1_drop for r in rows), reverse=True)
    kept, drop = keep_for_guard(model, [x], val, rows, max_drop=-1.0)  # a guard nothing meets: half the blocks
    assert len(kept) == max(1, len(units) // 2) and drop > -1.0
    assert keep_for_guard(model, [x], val, rows, max_drop=100.0)[0] == ()  # int8 throughout already passes


def test_deploy_int8_keep_auto_writes_the_sensitivity_table(trained_run, tmp_path, capsys):
    pytest.importorskip("torchao")
    out = tmp_path / "auto"
    argv = ["deploy", str(trained_run), "--out", str(out), "--runtimes", "eager,inductor-int8", "--batch", "4",
            "--min-time", "0.05", "--calibration-images", "8", "--int8-keep", "auto"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "deploy.json").read_text())
    rows = (out / "sensitivity.csv").read_text().splitlines()
    assert rows[0] == "block,top1,top1_drop,agreement" and len(rows) > 3
    s = report["sensitivity"]
    assert s["within_guard"] == (s["top1_drop_with_kept"] <= 1.0) and "sensitivity.csv" in report["written"]
    c = {c["runtime"]: c for c in report["candidates"]}["inductor-int8"]
    assert c["note"] or all(k in c["settings"] for k in s["kept"])
    assert "int8 sensitivity: kept" in capsys.readouterr().out

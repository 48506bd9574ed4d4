"""`convscale bench` and `convscale.bench.run`: fields, static figures, outputs, errors. Few iterations of tiny
models: these tests check the measuring, not the machine's speed."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import meta_model
from convscale import bench
from convscale.bench import benchmark
from convscale.bench.plots import pareto_front
from convscale.cli import main
from convscale.factory import live_counts
from convscale.utils.timing import Timing, measure

FAST = {"min_iters": 2, "min_time": 0.0, "warmup": 1}
FAST_ARGS = ["--min-iters", "2", "--min-time", "0", "--warmup", "1"]
REFERENCE = Path(__file__).parent / "data" / "reference_models.csv"


@pytest.fixture(scope="module")
def report() -> bench.BenchReport:
    return bench.run(
        ["test_efficientnet", "test_convnext"], res=48, batch=3, mode="both", per_layer=True, device="cpu", **FAST
    )


def test_fields_are_present_and_consistent(report):
    assert {(r.model, r.mode) for r in report.results} == {
        (m, mode) for m in ("test_efficientnet", "test_convnext") for mode in ("infer", "train")
    }
    assert report.peak_gmac_s > 0
    for r in report.results:
        assert r.impl == "convscale" and r.res == 48 and r.batch == 3 and r.iters >= 2
        assert r.img_s * r.median_ms / 1e3 == pytest.approx(r.batch, rel=1e-3)
        assert r.p10_ms <= r.median_ms <= r.p90_ms
        params, macs = live_counts(r.model, (48,))
        assert r.params == params
        assert r.gmacs == macs[48] / 1e9
        assert r.activations_m > 0 and r.mem_access_mb > 0 and r.intensity > 0
        assert r.peak_mem_mb >= 0
        work = r.gmacs * (1 if r.mode == "infer" else 3)  # training: forward + backward = 3x the forward
        assert r.gmac_s == pytest.approx(work * r.img_s, rel=1e-2)
        assert r.peak_fraction == pytest.approx(r.gmac_s / report.peak_gmac_s, rel=1e-2)
        assert (r.latency_ms is not None) == (r.mode == "infer")


def test_per_layer_shares(report):
    for model in ("test_efficientnet", "test_convnext"):
        kinds = [r for r in report.layers if r.model == model and r.group == "kind"]
        stages = [r for r in report.layers if r.model == model and r.group == "stage"]
        assert {r.name for r in kinds} <= set(bench.KINDS)
        for rows in (kinds, stages):
            assert sum(r.time_share for r in rows) == pytest.approx(1, abs=1e-3)
            assert sum(r.gmacs_share for r in rows) == pytest.approx(1, abs=1e-3)
            assert sum(r.mem_share for r in rows) == pytest.approx(1, abs=1e-3)
        total = next(r.gmacs for r in report.results if r.model == model)
        assert sum(r.gmacs for r in kinds) == pytest.approx(total, abs=1e-4)
        assert any(r.name.startswith("stages.") for r in stages)
    convnext = {r.name for r in report.layers if r.model == "test_convnext" and r.group == "kind"}
    assert {"depthwise conv", "1x1 conv", "norm", "activation"} <= convnext  # its MLP Linears are 1x1 convs


def test_static_gmacs_match_reference_for_every_listed_model():
    rows = list(csv.DictReader(REFERENCE.open()))
    import convscale

    registered = set(convscale.list_models())
    checked = 0
    for row in rows:
        if row["model"] not in registered:
            continue
        res = int(row["test_size"])
        model = meta_model(row["model"])
        static = bench.static_figures(model, res, 4)
        assert static.params == int(row["params"]), row["model"]
        assert static.macs / 1e9 == pytest.approx(float(row["gmacs_at_test_size"]), rel=0.01), row["model"]
        checked += 1
    assert checked >= 50


def test_memory_access_cost_by_hand():
    """ShuffleNetV2's MAC: input + output + weights, in bytes of the dtype."""
    h = w = 10
    c1, c2 = 8, 16
    pointwise = nn.Conv2d(c1, c2, 1, bias=False)
    s = bench.static_figures(pointwise, h, 4, in_chans=c1)
    assert s.mem_access_bytes == 4 * (h * w * c1 + h * w * c2 + c1 * c2)  # the paper's hw(c1 + c2) + c1*c2
    assert s.macs == h * w * c1 * c2
    assert bench.static_figures(pointwise, h, 2, in_chans=c1).mem_access_bytes == 2 * (h * w * (c1 + c2) + c1 * c2)
    depthwise = nn.Conv2d(c1, c1, 3, padding=1, groups=c1, bias=True)
    s = bench.static_figures(depthwise, h, 4, in_chans=c1)
    assert s.mem_access_bytes == 4 * (h * w * c1 + h * w * c1 + 9 * c1 + c1)  # in, out, 3x3 weights, bias
    assert s.macs == h * w * c1 * 9
    strided = nn.Conv2d(c1, c1, 3, stride=2, padding=1, groups=c1, bias=False)
    assert bench.static_figures(strided, h, 4, in_chans=c1).mem_access_bytes == 4 * (h * w * c1 + 5 * 5 * c1 + 9 * c1)


def test_layer_kinds():
    assert bench.layer_kind(nn.Conv2d(8, 8, 3, groups=8)) == "depthwise conv"
    assert bench.layer_kind(nn.Conv2d(8, 16, 1)) == "1x1 conv"
    assert bench.layer_kind(nn.Conv2d(8, 16, 3)) == "conv"
    assert bench.layer_kind(nn.Conv2d(8, 16, 3, groups=2)) == "conv"
    assert bench.layer_kind(nn.Linear(8, 4), torch.zeros(2, 3, 3, 8)) == "1x1 conv"
    assert bench.layer_kind(nn.Linear(8, 4), torch.zeros(2, 8)) == "linear"
    assert bench.layer_kind(nn.Sequential()) is None


def test_views_are_free_and_inplace_ops_read_and_write():
    class Net(nn.Module):
        def forward(self, x):
            y = x.permute(0, 2, 3, 1).reshape(-1)  # views: no memory traffic
            return torch.relu_(y.clone())  # clone: read + write; relu_: read + write

    n = 2 * 3 * 4 * 4
    records = bench.trace_forward(Net(), torch.zeros(2, 3, 4, 4))
    assert sum(r.elements for r in records) == 4 * n


def test_timing_statistics_and_interleaving():
    t = Timing.of([float(i) for i in range(1, 11)])
    assert t.median == 5.5 and t.p10 < t.median < t.p90 and t.iters == 10
    calls: list[str] = []
    out = measure(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
        torch.device("cpu"),
        warmup=1,
        min_iters=4,
        min_time=0,
    )
    assert out["a"].iters == out["b"].iters == 4
    assert calls[2:] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # after warm-up, alternating order


def test_pareto_front():
    points = [(100, 70.0), (50, 75.0), (60, 72.0), (40, 74.0), (200, 60.0)]
    assert pareto_front(points) == [(200, 60.0), (100, 70.0), (60, 72.0), (50, 75.0)]


def test_cli_writes_csv_json_and_plots(tmp_path, capsys):
    out = tmp_path / "bench"
    rc = main(
        ["bench", "test_efficientnet", "--res", "32", "--batch", "2", "--per-layer", "--out", str(out), *FAST_ARGS]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "test_efficientnet" in printed and "depthwise conv" in printed
    rows = list(csv.DictReader((out / "bench.csv").open()))
    assert len(rows) == 1 and float(rows[0]["img_s"]) > 0
    assert list(rows[0]) == [f.name for f in bench.BenchResult.__dataclass_fields__.values()]
    data = json.loads((out / "bench.json").read_text())
    assert data["results"][0]["model"] == "test_efficientnet" and data["settings"]["batch"] == 2
    layers = list(csv.DictReader((out / "bench_layers.csv").open()))
    assert {r["group"] for r in layers} == {"kind", "stage"}
    for name in ("bench_top1.png", "bench_gmacs.png", "bench_layers.png"):
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_compare_timm_without_timm_says_how_and_exits_0(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    rc = main(["bench", "test_efficientnet", "--res", "32", "--batch", "2", "--compare", "timm", *FAST_ARGS])
    assert rc == 0
    captured = capsys.readouterr()
    assert "pip install timm" in captured.err
    assert "test_efficientnet" in captured.out


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys):
    assert "unknown model 'nope'" in _one_line_error(capsys, ["bench", "nope"])
    assert "batch must be a positive integer, got 0" in _one_line_error(
        capsys, ["bench", "test_resnet", "--batch", "0"]
    )
    assert "batch" in _one_line_error(capsys, ["bench", "test_resnet", "--batch", "-3"])
    assert "--dtype" in _one_line_error(capsys, ["bench", "test_resnet", "--dtype", "fp64"])
    if not torch.cuda.is_available():
        assert "CUDA is not available" in _one_line_error(capsys, ["bench", "test_resnet", "--device", "cuda"])

    def refuse(device, dtype, mode):
        raise RuntimeError(f'"slow_conv2d_cpu" not implemented for {dtype}\nmore detail')

    monkeypatch.setattr(benchmark, "_dtype_probe", refuse)
    err = _one_line_error(capsys, ["bench", "test_resnet", "--dtype", "fp16", "--device", "cpu"])
    assert "--dtype fp16 does not run on cpu" in err and "not implemented" in err


def test_settings_are_validated():
    with pytest.raises(ValueError, match="mode must be one of"):
        bench.BenchSettings(mode="fast")
    with pytest.raises(ValueError, match="fuse is an inference transform"):
        bench.BenchSettings(fuse=True, mode="train")
    with pytest.raises(ValueError, match="res must be at least 32"):
        bench.BenchSettings(res=16)
    with pytest.raises(ValueError, match="non-empty list"):
        bench.run("test_resnet")


def test_fuse_applies_to_inference_rows():
    report = bench.run(["test_repvgg"], res=32, batch=2, mode="both", fuse=True, device="cpu", **FAST)
    infer, train = (next(r for r in report.results if r.mode == m) for m in ("infer", "train"))
    assert infer.fused and not train.fused
    assert infer.params < train.params  # re-parameterized: one 3x3 conv per block


def test_out_of_memory_retries_with_a_smaller_batch(monkeypatch):
    real = benchmark._bench_at

    def fake(name, mode, res, batch, *args):
        if batch > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(name, mode, res, batch, *args)

    monkeypatch.setattr(benchmark, "_bench_at", fake)
    lines: list[str] = []
    report = bench.run(["test_resnet"], res=32, batch=8, device="cpu", log=lines.append, **FAST)
    (r,) = report.results
    assert r.batch == 2 and "ran out of memory" in r.note
    assert sum("ran out of memory" in line for line in lines) == 2  # 8 -> 4 -> 2, each said
    assert math.isfinite(r.img_s)


def test_activations_count_channels_last_mlp_as_1x1_convs():
    """ConvNeXt's MLP is a Linear over (N, H, W, C): its outputs are conv activations, as in timm's 1x1-conv form."""
    import convscale

    model = convscale.create_model("test_convnext").eval()
    outputs = 0

    def count(module, inputs, out):
        nonlocal outputs
        if isinstance(module, nn.Conv2d) or inputs[0].dim() > 2:
            outputs += out.numel()

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for h in handles:
        h.remove()
    assert bench.static_figures(model, 64, 4).activations == outputs

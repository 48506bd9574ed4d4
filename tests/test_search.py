"""Search: the constrained grid, φ scaling, architecture files, the latency table, and both searches end to end on
tiny variants (synthetic-shapes, seconds), resumed and refused."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch

import convscale
from conftest import TINY_MODELS
from convscale.arch import read_arch, write_arch
from convscale.cli import main
from convscale.counting import count_params
from convscale.registry import get_entry
from convscale.scaling import compound, scaled_config
from convscale.search import proxy as proxy_module
from convscale.search.compound import ScalingSearch, search_scaling
from convscale.search.latency import LatencyTable, Setting, network_parts
from convscale.search.proxy import ProxyRun
from convscale.search.space import ScalePoint, apply_choices, base_choices, family, scaling_grid, stage_options
from convscale.search.stages import StageSearch, reward, search_stages

TINY_PROXY = ProxyRun(epochs=1, batch_size=32, shapes_train=64, shapes_val=32, shapes_res=32)


@pytest.fixture
def table(tmp_path):
    return LatencyTable(tmp_path / "table.json", min_time=0.005)


@pytest.mark.parametrize("target,step,tol", [(2.0, 0.05, 0.05), (2.0, 0.1, 0.02), (3.0, 0.05, 0.1)])
def test_the_grid_holds_only_points_within_tolerance(target, step, tol):
    grid = scaling_grid(target, step, tol)
    assert grid and all(abs(p.flops_factor - target) <= tol * target for p in grid)
    assert all(min(p.alpha, p.beta, p.gamma) >= 1.0 for p in grid)
    # and it misses none: every grid point left out is outside the band
    axis = sorted({p.alpha for p in scaling_grid(target, step, 10.0)})
    inside = {(a, b, g) for a in axis for b in axis for g in axis if abs(a * b * b * g * g - target) <= tol * target}
    assert inside == {(p.alpha, p.beta, p.gamma) for p in grid}


def test_the_papers_coefficients_are_on_the_grid():
    assert ScalePoint(1.2, 1.1, 1.15) in scaling_grid(2.0, 0.05, 0.05)  # 1.2 · 1.1² · 1.15² = 1.92


def test_phi_scaling_reproduces_compound():
    cfg = get_entry("efficientnet_b0").config
    point = ScalePoint(1.2, 1.1, 1.15)
    for phi, scaled, res in family(cfg, 224, point, range(1, 4)):
        m = compound(phi, 1.2, 1.1, 1.15)
        assert scaled == scaled_config(cfg, width=m.width, depth=m.depth, resolution=res)
        assert res == round(224 * m.resolution)


ARCH_MODELS = [*TINY_MODELS, "efficientnet_b0", "efficientnetv2_s", "mobilenetv3_large_100", "resnet50"]


@pytest.mark.parametrize("name", ARCH_MODELS)
def test_an_architecture_file_round_trips_to_the_same_network(name, tmp_path):
    cfg = get_entry(name).config
    path = write_arch(tmp_path / f"{name}.yaml", cfg, name)
    base, back = read_arch(path)
    assert base == name and back == dataclasses.replace(cfg, published=None)
    with torch.device("meta"):
        assert count_params(convscale.create_model(str(path))) == count_params(convscale.create_model(name))


def test_an_architecture_file_is_a_model_name_everywhere(tmp_path, capsys):
    base = get_entry("test_efficientnetv2").config
    cfg = apply_choices(base, (stage_options(base, 0)[7], *base_choices(base)[1:]))  # another first stage
    path = write_arch(tmp_path / "mine.yaml", cfg, "test_efficientnetv2")
    assert main(["info", str(path)]) == 0
    assert "mine.yaml" in capsys.readouterr().out
    from convscale.train import TrainConfig, fit

    run = fit(
        TrainConfig(
            model=str(path),
            epochs=1,
            batch_size=32,
            workers=0,
            shapes_train=64,
            shapes_val=32,
            out=str(tmp_path / "runs"),
        ),
        log=lambda *_: None,
    )
    assert run.run_dir.name == "mine-synthetic-shapes"


@pytest.mark.parametrize(
    "edit,field",
    [
        ("kernel: 3", "config.stages[0].kernel: expected an integer, got 'five'"),
        ("block: fused", "config.stages[0].block: expected one of 'mbconv', 'fused', got 'conv'"),
        ("width_mult: 1.0", "unknown field 'widht_mult'"),
        ("format: convscale-arch/1", "expected a mapping with format: convscale-arch/1"),
        ("base: test_efficientnetv2", "unknown model 'test_efficientnetv9'"),
        ("repeats: 2", "config.stages[0]: invalid stage"),
    ],
)
def test_a_malformed_architecture_is_refused_naming_the_field(edit, field, tmp_path, capsys):
    path = write_arch(tmp_path / "a.yaml", get_entry("test_efficientnetv2").config, "test_efficientnetv2")
    bad = {
        "kernel: 3": "kernel: five",
        "block: fused": "block: conv",
        "width_mult: 1.0": "widht_mult: 1.0",
        "format: convscale-arch/1": "format: other",
        "base: test_efficientnetv2": "base: test_efficientnetv9",
        "repeats: 2": "repeats: 0",
    }[edit]
    path.write_text(path.read_text().replace(edit, bad, 1))
    with pytest.raises(ValueError, match=r"a\.yaml: ") as e:
        read_arch(path)
    assert field in str(e.value)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err


def test_the_table_predicts_the_tiny_variants_from_their_parts(table):
    for name in ("test_efficientnet", "test_efficientnetv2", "test_tf_efficientnetv2"):
        cfg = get_entry(name).config
        seconds = table.predict(cfg, 48, Setting(batch=2))
        parts = network_parts(cfg, 48)
        assert seconds == pytest.approx(sum(table.seconds(cfg, p, Setting(batch=2)) for p in parts))
        assert 0 < seconds < 1
    measured = table.measured
    again = LatencyTable(table.path)  # from the file: nothing timed again
    assert again.predict(get_entry("test_efficientnet").config, 48, Setting(batch=2)) > 0 and again.measured == 0
    assert measured == len(table.entries)


@pytest.mark.parametrize("name", ["test_efficientnet", "test_efficientnetv2", "test_mobilenetv3"])
def test_the_parts_see_the_sizes_the_network_feeds_them(name):
    """Each part's input size and width, as listed, are what the built network's blocks receive (odd sizes too)."""
    cfg = get_entry(name).config
    model = convscale.create_model(name).eval()
    blocks = [b for stage in model.stages for b in stage]
    seen = []
    hooks = [b.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape[1:3]))) for b in blocks]
    model(torch.randn(1, 3, 53, 53))
    for h in hooks:
        h.remove()
    listed = [(p.in_chs, p.res) for p in network_parts(cfg, 53) if p.kind == "block"]
    assert listed == seen


def test_a_scaling_search_end_to_end_then_resumed(tmp_path, table, monkeypatch):
    s = ScalingSearch("test_efficientnet", res=32, target=2.0, step=0.25, tolerance=0.15, phis=2, max_candidates=2)
    summary = search_scaling(s, tmp_path / "out", TINY_PROXY, table=table, log=lambda *_: None)
    rows = list(csv.DictReader(open(tmp_path / "out" / "candidates.csv")))
    assert rows[0]["label"] == "base" and len(rows) == 3
    assert all(float(r["measured_ms"]) > 0 and 0 <= float(r["top1"]) <= 100 for r in rows)
    assert summary["winner"]["label"] != "base"
    with torch.device("meta"):
        convscale.create_model(str(tmp_path / "out" / "arch.yaml"))
    assert (tmp_path / "out" / "family" / "phi2.yaml").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished candidate was trained again")

    monkeypatch.setattr(proxy_module, "proxy_train", no_training)
    said = []
    again = search_scaling(s, tmp_path / "out", TINY_PROXY, table=table, log=said.append)
    assert again["winner"] == summary["winner"] and "3 of 3 candidates already done" in said[1]


def test_a_stage_search_end_to_end(tmp_path, table):
    s = StageSearch("test_efficientnetv2", res=32, mode="eval", batch=2, proxies=1, stages=(3, 4))
    summary = search_stages(s, tmp_path / "out", TINY_PROXY, table=table, log=lambda *_: None)
    rows = list(csv.DictReader(open(tmp_path / "out" / "candidates.csv")))
    cfg = get_entry(s.base).config
    assert len(rows) == 2 and summary["space"] == len(stage_options(cfg, 3)) * len(stage_options(cfg, 4))
    assert summary["space"] == (2 * 3 * 2 * 3) * (2 * 3 * 2 * 2)  # stage 4 has one layer: 1 or 2, not 0
    budget, p0 = summary["budget_ms"] / 1e3, float(rows[0]["params_m"])
    for r in rows:  # each row's reward is EfficientNetV2's, from its proxy top-1 and measured time
        want = reward(float(r["top1"]), float(r["measured_ms"]) / 1e3, budget, float(r["params_m"]), p0)
        assert float(r["reward"]) == pytest.approx(want, abs=1e-3)
    assert summary["winner"]["reward"] == max(float(r["reward"]) for r in rows) and len(summary["table"]) == 5


def test_the_reward_is_efficientnetv2s():
    assert reward(80.0, 1.0, 1.0, 1.0, 1.0) == 80.0
    assert reward(80.0, 2.0, 1.0, 1.0, 1.0) == pytest.approx(80.0 * 2**-0.07)
    assert reward(80.0, 1.0, 1.0, 2.0, 1.0) == pytest.approx(80.0 * 2**-0.05)


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    table = str(tmp_path / "t.json")
    cases = [
        (["search", "stages", "--base", "resnet50"], "needs an MBConv-family base"),
        (
            [
                "search",
                "scaling",
                "--base",
                "test_efficientnet",
                "--target",
                "1.5",
                "--step",
                "1",
                "--tolerance",
                "0.01",
            ],
            "no grid point",
        ),
        (
            [
                "search",
                "stages",
                "--base",
                "test_efficientnetv2",
                "--budget-ms",
                "0.001",
                "--batch",
                "1",
                "--res",
                "32",
            ],
            "below the fastest network",
        ),
        (["search", "stages", "--base", "test_efficientnetv2", "--stages", "9", "--res", "32"], "stage 9 does not"),
    ]
    for argv, words in cases:
        assert main([*argv, "--table", table, "--out", str(tmp_path / "o")]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, (argv, err)

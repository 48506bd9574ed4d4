"""Search: the constrained grid, φ scaling, architecture files, the latency table, and both searches end to end on
tiny variants (synthetic-shapes, seconds), resumed and refused."""

from __future__ import annotations

import csv
import dataclasses
import functools

import pytest
import torch

import convscale
from conftest import TINY_MODELS
from convscale.arch import read_arch, write_arch
from convscale.cli import main
from convscale.counting import count_params
from convscale.registry import get_entry
from convscale.scaling import compound, scaled_config
from convscale.search import latency as latency_module
from convscale.search import trial as trial_module
from convscale.search.choose import choose
from convscale.search.compound import ScalingSearch, search_scaling
from convscale.search.latency import LatencyTable, Setting, fit_calibration, network_parts
from convscale.search.measure import measure_against_base
from convscale.search.proxy import ProxyRun
from convscale.search.report import counts
from convscale.search.space import (
    ScalePoint,
    apply_choices,
    base_choices,
    family,
    is_mbconv_family,
    scaling_grid,
    stage_options,
)
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


def test_parts_are_kept_in_yardsticks_so_a_busy_minute_does_not_skew_the_table(tmp_path, monkeypatch):
    """Every timing is stubbed (here only) as a fixed cost per module and input times the machine's pace; the pace
    changes from one part to the next, as a neighbour's load does. Each part is kept as the same number of
    yardsticks whatever the pace it was timed at, and a prediction is those yardsticks times the yardstick's
    seconds now."""
    pace, calls, seen = [1.0], [], set()

    def timed(module, shape, setting, grad_input, min_time):
        calls.append(module)
        if len(calls) % 3 == 1:  # a part is timed between two yardsticks: the pace may change before each triple
            pace[0] = (1.0, 1.7, 1.2, 2.5)[len(calls) // 3 % 4]
            seen.add(pace[0])
        return 1e-9 * (1 + sum(p.numel() for p in module.parameters())) * shape[0] * shape[2] * shape[3] * pace[0]

    monkeypatch.setattr(latency_module, "_timed", timed)
    cfg, setting = get_entry("test_efficientnet").config, Setting(batch=2)
    busy = LatencyTable(tmp_path / "busy.json")
    busy.parts_units(cfg, 48, setting)
    assert len(seen) == 4 and len(calls) == 3 * busy.measured  # four paces, a triple per part
    quiet_pace = lambda *a: timed(*a) / pace[0]  # noqa: E731 - the same costs at one pace throughout
    monkeypatch.setattr(latency_module, "_timed", quiet_pace)
    quiet = LatencyTable(tmp_path / "quiet.json")
    assert quiet.parts_units(cfg, 48, setting) == pytest.approx(busy.parts_units(cfg, 48, setting), rel=1e-9)
    assert busy.entries == pytest.approx(quiet.entries, rel=1e-9)
    assert busy.predict(cfg, 48, setting) == pytest.approx(quiet.predict(cfg, 48, setting), rel=1e-9)
    monkeypatch.setattr(latency_module, "_timed", lambda *a: 3 * quiet_pace(*a))  # three times slower now
    later = LatencyTable(busy.path)  # from the file: nothing timed again but the yardstick
    assert later.predict(cfg, 48, setting) == pytest.approx(3 * quiet.predict(cfg, 48, setting), rel=1e-9)
    assert later.measured == 0
    units, now = later.predict_units(cfg, 48, setting), later.yardstick(setting)
    assert later.predict(cfg, 48, setting) == pytest.approx(units * now, rel=1e-12)
    monkeypatch.setattr(latency_module, "_timed", lambda *a: 5 * quiet_pace(*a))  # the pace moves again
    assert later.pace(setting) == pytest.approx(5 / 3 * now, rel=1e-9)  # a probe times it now...
    assert later.yardstick(setting) == now  # ...and the table's own reading stays the one it first took
    busy.path.write_text('{"seconds": {"a part": 0.001}}')  # a table of seconds, before yardsticks
    assert LatencyTable(busy.path).entries == {}  # measured again, not read as yardsticks


def test_the_calibration_carries_a_cost_per_part_only_where_it_predicts_networks_left_out():
    sums = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    counts = [30.0, 20.0, 50.0, 25.0, 60.0, 35.0]  # parts per network, not in step with the sums
    real = [1.1 * x + 0.05 * n for x, n in zip(sums, counts, strict=True)]
    assert fit_calibration(sums, counts, real) == pytest.approx((1.1, 0.05), rel=1e-9)
    # a scale and noise (±4%), with counts nearly in step with the sums: a per-part term would fit the noise
    in_step = [x / 2 + (0.3 if i % 2 else -0.3) for i, x in enumerate(sums)]
    noisy = [1.05 * x * (1.04 if i % 3 == 0 else 0.97) for i, x in enumerate(sums)]
    scale, per_part = fit_calibration(sums, in_step, noisy)
    assert per_part == 0.0 and scale == pytest.approx(1.05, rel=0.03)
    assert fit_calibration(sums[:3], counts[:3], real[:3])[1] == 0.0  # too few networks to leave one out: a scale
    assert fit_calibration([10.0], [5.0], [12.0]) == pytest.approx((1.2, 0.0))
    with pytest.raises(ValueError, match="one sum, count and measurement per network"):
        fit_calibration([1.0, 2.0], [1.0], [1.0, 2.0])


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
    """Real training and timing on the tiny variant: every grid point a trial, the winner and its family written; the
    same command again reads the study and trains nothing."""
    s = ScalingSearch("test_efficientnet", res=32, target=2.0, step=0.25, tolerance=0.15, phis=2, max_candidates=2)
    summary = search_scaling(s, tmp_path / "out", TINY_PROXY, table=table, log=lambda *_: None)
    rows = list(csv.DictReader(open(tmp_path / "out" / "candidates.csv")))
    assert "base" in {r["label"] for r in rows} and len(rows) == 3
    assert all(float(r["measured_ms"]) > 0 and 0 <= float(r["top1"] or r["top1_last"]) <= 100 for r in rows)
    assert all(r["state"] in ("complete", "pruned") and bool(r["top1"]) == (r["state"] == "complete") for r in rows)
    assert summary["winner"]["label"] != "base" and (tmp_path / "out" / "study.db").is_file()
    with torch.device("meta"):
        convscale.create_model(str(tmp_path / "out" / "arch.yaml"))
    assert (tmp_path / "out" / "family" / "phi2.yaml").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished candidate was trained again")

    monkeypatch.setattr(trial_module, "proxy_train", no_training)
    said = []
    again = search_scaling(s, tmp_path / "out", TINY_PROXY, table=table, log=said.append)
    assert again["winner"] == summary["winner"]
    assert "3 of 3 trials done" in "\n".join(said) and not any("measuring" in x for x in said)


def test_a_stage_search_end_to_end(tmp_path, table):
    s = StageSearch("test_efficientnetv2", res=32, mode="eval", batch=2, trials=3, stages=(3, 4))
    summary = search_stages(s, tmp_path / "out", TINY_PROXY, table=table, log=lambda *_: None)
    rows = list(csv.DictReader(open(tmp_path / "out" / "candidates.csv")))
    cfg = get_entry(s.base).config
    assert len(rows) == summary["trials_started"] == 3
    assert summary["space"] == len(stage_options(cfg, 3)) * len(stage_options(cfg, 4))
    assert summary["space"] == (2 * 3 * 2 * 3) * (2 * 3 * 2 * 2)  # stage 4 has one layer: 1 or 2, not 0
    rows = [r for r in rows if r["top1"]]  # the trained ones
    budget, p0 = summary["budget_ms"] / 1e3, float(next(r for r in rows if r["label"] == "base")["params_m"])
    ranked = list(csv.DictReader(open(tmp_path / "out" / "pareto.csv")))
    for r in ranked:  # each row's reward is EfficientNetV2's, from its proxy top-1 and measured time
        want = reward(float(r["top1"]), float(r["measured_ms"]) / 1e3, budget, float(r["params_m"]), p0)
        assert float(r["reward"]) == pytest.approx(want, abs=1e-2)
    assert len(summary["table"]) == 5 and summary["decision"]["objective"] == "reward"
    assert summary["decision"]["verdict"] in ("one seed", "only candidate")


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


# --- measured latency decides, seeds decide accuracy (timing and training stubbed in the tests, not in the code) ---


def stub_timing(monkeypatch, seconds):
    """Every whole-network measurement returns ``seconds(cfg, res)`` (the code's timer is replaced here only)."""
    monkeypatch.setattr(latency_module, "measure_network", lambda cfg, res, setting, **kw: seconds(cfg, res))


def stub_training(monkeypatch, top1):
    """Proxy runs return ``top1(arch config, seed)`` at once, after each epoch too; the calls are recorded as
    (label, seed)."""
    calls = []

    def train(arch, res, proxy, runs, name, after_epoch=None):
        calls.append((name.rsplit(".seed", 1)[0], proxy.seed))
        value = top1(read_arch(arch)[1], proxy.seed)
        for epoch in range(1, proxy.epochs + 1):
            if after_epoch is not None:
                after_epoch({"epoch": epoch, "val_top1": value})
        return {"top1": value, "train_s": 0.0}

    monkeypatch.setattr(trial_module, "proxy_train", train)
    return calls


def width(cfg) -> float:
    return cfg.width_mult


def test_a_candidate_predicted_inside_and_measured_outside_is_dropped(tmp_path, table, monkeypatch):
    s = ScalingSearch("test_efficientnet", 32, "latency", target=2.0, step=0.25, tolerance=0.25, max_candidates=4)
    base = get_entry(s.base).config
    macs = functools.cache(lambda cfg, res: counts(cfg, res)[0] / counts(base, 32)[0])
    # predicted: proportional to the MACs; measured: so too at the base's size, 1.5x that at a larger one
    monkeypatch.setattr(table, "predict", lambda cfg, res, setting, num_classes=1000: macs(cfg, res) * 1e-3)
    stub_timing(monkeypatch, lambda cfg, res: 1e-3 * macs(cfg, res) * (1.5 if res > 32 else 1.0))
    calls = stub_training(monkeypatch, lambda cfg, seed: 50.0 + 10 * cfg.width_mult)
    said = []
    summary = search_scaling(s, tmp_path / "out", TINY_PROXY, table=table, log=said.append)
    rows = list(csv.DictReader(open(tmp_path / "out" / "candidates.csv")))
    assert len(rows) == 1 + 4 == summary["measured"] and all(float(r["measured_ms"]) > 0 for r in rows)
    over = [r for r in rows if float(r["measured_ratio"]) > 2.0]
    assert over and all(r["dropped"] == "measured over the budget" and not r["top1"] for r in over)
    assert all(r["state"] == "pruned" for r in over) and summary["dropped_by_measurement"] == len(over)
    assert f"{len(over)} dropped by measurement" in "\n".join(said)
    base_row = next(r for r in rows if r["label"] == "base")
    assert all(abs(float(r["predicted_ms"]) / float(base_row["predicted_ms"]) - 2) <= 0.5 for r in over)  # predicted in
    assert {label for label, _ in calls} == {r["label"] for r in rows if not r["dropped"]}  # only those trained
    assert float(summary["winner"]["measured_ratio"]) <= 2.0  # the winner is inside by measurement


def test_seeds_confirm_each_survivor_with_other_seeds_and_average(tmp_path, table, monkeypatch):
    s = ScalingSearch("test_efficientnet", 32, target=2.0, step=0.25, tolerance=0.15, max_candidates=2, seeds=2)
    stub_timing(monkeypatch, lambda cfg, res: 1e-3)
    calls = stub_training(monkeypatch, lambda cfg, seed: 60.0 + seed * 4)  # seed 0: 60, seed 1: 64
    summary = search_scaling(s, tmp_path / "out", dataclasses.replace(TINY_PROXY, seed=0), table=table,
                             log=lambda *_: None)  # fmt: skip
    rows = list(csv.DictReader(open(tmp_path / "out" / "pareto.csv")))
    labels = [r["label"] for r in csv.DictReader(open(tmp_path / "out" / "candidates.csv"))]
    assert sorted(calls) == sorted((label, k) for label in labels for k in (0, 1))  # the trial, then its confirmation
    for r in rows:
        assert r["top1_seeds"] == "60.00 64.00" and float(r["top1"]) == 62.0 and r["seeds"] == "2"
        assert float(r["top1_std"]) == pytest.approx(2 * 2**0.5, abs=1e-3)
    assert summary["decision"]["verdict"] == "tie" and summary["confirmation_runs"] == 3  # equal means: no margin

    calls.clear()
    search_scaling(s, tmp_path / "out", TINY_PROXY, table=table, log=lambda *_: None)
    assert calls == []  # a rerun: every trial and confirmation is in the study


@pytest.mark.parametrize("objective", ["accuracy", "reward"])
def test_the_objective_picks_inside_the_measured_budget(objective, tmp_path, table, monkeypatch):
    """Over a stage space: the widest networks are most accurate but have more parameters; some are measured over
    the budget. ``accuracy`` takes the most accurate inside, ``reward`` may trade it for fewer parameters."""
    s = StageSearch("test_efficientnetv2", res=32, mode="eval", batch=2, trials=8, stages=(4,), seeds=2,
                    objective=objective, budget_ms=2.0)  # fmt: skip
    seen = {}

    def params(cfg) -> float:
        if cfg not in seen:
            seen[cfg] = counts(cfg, 32)[1]
        return seen[cfg]

    base_params = params(get_entry(s.base).config)
    monkeypatch.setattr(table, "predict", lambda cfg, res, setting, num_classes=1000: 1e-3)
    stub_timing(monkeypatch, lambda cfg, res: 1e-3 * (9.0 if params(cfg) > 3.5 * base_params else 1.0))
    stub_training(monkeypatch, lambda cfg, seed: 50.0 + 5.0 * params(cfg) / base_params + seed * 0.01)
    summary = search_stages(s, tmp_path / "out", TINY_PROXY, table=table, log=lambda *_: None)
    rows = list(csv.DictReader(open(tmp_path / "out" / "candidates.csv")))
    ranked = list(csv.DictReader(open(tmp_path / "out" / "pareto.csv")))
    budget_ratio = summary["budget_ms"] / summary["base_measured_ms"]
    assert float(summary["winner"]["measured_ratio"]) <= budget_ratio
    dropped = [r for r in rows if r.get("dropped")]
    assert all(not r.get("top1") and r["state"] == "pruned" for r in dropped)  # never trained
    assert len(dropped) == summary["dropped_by_measurement"]
    inside = [r for r in ranked if float(r["measured_ratio"]) <= budget_ratio]
    key = "top1" if objective == "accuracy" else "reward"
    assert summary["winner"][key] >= max(float(r[key]) for r in inside) - 1e-3
    assert summary["decision"]["objective"] == objective


def test_a_win_needs_a_margin_over_the_spread():
    def row(label, top1, std, seeds=3):
        return {"label": label, "top1": top1, "top1_std": std, "seeds": seeds, "measured_ms": 1.0}

    assert choose([row("a", 80.0, 0.2), row("b", 79.0, 0.3)], "accuracy")["verdict"] == "win"
    assert choose([row("a", 80.0, 0.2), row("b", 79.8, 0.3)], "accuracy")["verdict"] == "tie"
    assert choose([row("a", 80.0, 0.0, 1), row("b", 70.0, 0.0, 1)], "accuracy")["verdict"] == "one seed"
    assert choose([row("a", 80.0, 0.1)], "accuracy")["verdict"] == "only candidate"
    with pytest.raises(ValueError, match="objective must be one of"):
        choose([row("a", 80.0, 0.1)], "speed")


def test_measurement_against_the_base_repeats_until_the_spread_is_small(monkeypatch):
    base = get_entry("test_efficientnet").config
    other = dataclasses.replace(base, width_mult=1.5)
    steady = iter([1e-3, 2e-3] * 100)
    stub_timing(monkeypatch, lambda cfg, res: next(steady))
    b, m = measure_against_base((base, 32), {"wide": (other, 32)}, Setting())
    assert m["wide"].ratio == 2.0 and m["wide"].rounds == 3 and not m["wide"].noisy and b.ms == 1.0
    jumpy = iter([2e-3, 3e-3, 4e-3] * 100)  # the wide one's; the base's steady
    stub_timing(monkeypatch, lambda cfg, res: next(jumpy) if cfg == other else 1e-3)
    said = []
    _, m = measure_against_base((base, 32), {"wide": (other, 32)}, Setting(), max_rounds=5, log=said.append)
    assert m["wide"].rounds == 5 and m["wide"].noisy and "noisy after 5 rounds" in said[0]


def test_spearman_and_ranks():
    from convscale.utils.stats import ranks, spearman

    assert ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)


def test_the_stage_space_holds_the_base_itself():
    """MobileNetV3's expansions (4.5, 3.67, 3) are not among the searched 1, 4, 6: each stage also offers the base's
    own choice, so the base is a network of the space (the stage study's first trial)."""
    from convscale.search.stages import _Space

    cfg = get_entry("mobilenetv3_small_100").config
    space = _Space(StageSearch("mobilenetv3_small_100", 32), cfg, None)
    assert all(c in options for c, options in zip(base_choices(cfg), space.options, strict=True))
    assert any(c not in stage_options(cfg, i) for i, c in enumerate(base_choices(cfg)))


def test_every_block_and_expansion_of_the_stage_space_trains_in_a_relu_family():
    """The stage space puts Fused-MBConv rows into MobileNetV3-Small's ReLU stages: each (block, expansion) in each
    stage must take a training step (an unexpanded Fused-MBConv once added its shortcut in place onto a ReLU's
    output, which the backward pass needs: "modified by an inplace operation")."""
    entry = get_entry("mobilenetv3_small_100")
    base = base_choices(entry.config)
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    for i in range(len(base)):
        for block in ("mbconv", "fused"):
            for expand in (1.0, 4.0):
                choice = dataclasses.replace(base[i], block=block, expand=expand)
                cfg = apply_choices(entry.config, (*base[:i], choice, *base[i + 1 :]))
                model = entry.build(cfg, num_classes=2).train()
                torch.nn.functional.cross_entropy(model(x), y).backward()


@pytest.mark.parametrize("name", [n for n in convscale.list_models() if is_mbconv_family(get_entry(n).config)])
def test_the_base_own_stage_choices_give_the_base_itself(name):
    """The stage search's base is the registered network: its squeeze-excite where it has one (MobileNetV3's ReLU
    stages and MobileNetV2 have none; the search once gave every MBConv row SE 0.25) and AsymmNet's middle widths."""
    cfg = get_entry(name).config
    assert apply_choices(cfg, base_choices(cfg)) == cfg

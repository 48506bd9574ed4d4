"""``--amp auto``: the rule (the probe's timings and the machine stubbed both ways), a run that records its choice and
keeps it on resume, and the real probe timing a tiny model."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from convscale import create_model
from convscale.train import TrainConfig, fit, precision
from convscale.train.optimizer import create_optimizer
from convscale.utils.machine import Machine

REAL_PROBE = precision.probe_speeds  # taken before the suite's stub replaces it for each test
ZEN3 = Machine("AMD EPYC 7B13 (Zen 3)", ("avx2",), 2)
ZEN4 = Machine("AMD EPYC 9B14 (Zen 4)", ("avx2", "avx512f", "avx512_vnni", "avx512_bf16"), 2)
CPU = torch.device("cpu")
TINY = {"model": "test_resnet", "batch_size": 16, "shapes_train": 64, "shapes_val": 32, "workers": 0}


def _never(precisions):
    raise AssertionError("no probe should run")


def test_an_avx2_only_cpu_trains_in_fp32_without_a_probe(monkeypatch):
    monkeypatch.setattr(precision, "machine", lambda: ZEN3)
    choice = precision.choose_precision("auto", CPU, _never)
    assert choice.amp == "none" and choice.img_s == {}
    assert "AMD EPYC 7B13 (Zen 3) has no native bf16" in choice.describe()


@pytest.mark.parametrize(("bf16", "chosen"), [(1.6, "bf16"), (1.02, "none"), (0.8, "none")])
def test_a_native_bf16_cpu_takes_bf16_only_where_it_is_clearly_faster(monkeypatch, bf16, chosen):
    monkeypatch.setattr(precision, "machine", lambda: ZEN4)
    choice = precision.choose_precision("auto", CPU, lambda ps: {"none": 100.0, "bf16": 100.0 * bf16})
    assert choice.amp == chosen and choice.img_s == {"none": 100.0, "bf16": 100.0 * bf16}
    line = choice.describe()
    assert f"bf16 steps {bf16:.2f}x as fast as fp32" in line and "fp32 100.0 img/s" in line, line


def test_a_forced_precision_is_kept_and_cuda_prefers_bf16_then_fp16(monkeypatch):
    assert precision.choose_precision("bf16", CPU, _never).amp == "bf16"
    assert precision.choose_precision("none", CPU, _never).amp == "none"
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.choose_precision("auto", gpu, _never).amp == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.choose_precision("auto", gpu, _never).amp == "fp16"
    assert precision.choose_precision("auto", gpu, _never, refuses=lambda amp: amp == "fp16").amp == "none"


def test_a_run_prints_and_records_its_choice_and_a_resume_keeps_it(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "machine", lambda: ZEN4)
    monkeypatch.setattr(precision, "probe_speeds", lambda *a, **k: {"none": 50.0, "bf16": 90.0})
    lines: list[str] = []
    cfg = TrainConfig(**TINY, epochs=2, max_steps=5, out=str(tmp_path), name="auto")
    run = fit(cfg, log=lines.append).run_dir
    said = [line for line in lines if line.startswith("precision bf16")]
    assert said == ["precision bf16 (--amp auto: bf16 steps 1.80x as fast as fp32 here): fp32 50.0 img/s, "
                    "bf16 90.0 img/s"], lines  # fmt: skip
    assert yaml.safe_load((run / "config.yaml").read_text())["amp"] == "bf16"
    recorded = json.loads((run / "precision.json").read_text())
    assert recorded["amp"] == "bf16" and recorded["img_s"] == {"none": 50.0, "bf16": 90.0}
    assert recorded["machine"]["isa"] == list(ZEN4.isa)

    monkeypatch.setattr(precision, "probe_speeds", lambda *a, **k: {"none": 90.0, "bf16": 50.0})
    lines.clear()
    result = fit(cfg, resume=run, log=lines.append)  # the same config (amp: auto) asked again
    assert not any(line.startswith("precision") for line in lines)
    assert yaml.safe_load((run / "config.yaml").read_text())["amp"] == "bf16"
    assert result.metrics["precision"] == "bf16"


def test_the_probe_times_both_precisions_of_the_runs_step():
    model = create_model("test_resnet", num_classes=10).to(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.random.get_rng_state()
    speeds = REAL_PROBE(
        model, lambda m: create_optimizer(m, "adamw", 1e-3, 0.05, 0.9), ["none", "bf16"], batch=4, size=32,
        classes=10, channels_last=True, device=CPU, seconds=0.05,
    )  # fmt: skip
    assert set(speeds) == {"none", "bf16"} and all(v > 0 for v in speeds.values())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # timed on a copy
    assert torch.equal(torch.random.get_rng_state(), state)  # the run's random stream untouched

"""The training engine's pieces, and seconds-long runs of a tiny model on a small synthetic-shapes."""

from __future__ import annotations

import copy
import csv
import math
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from convscale import create_model
from convscale.data import EpochOrder, ImageFolder, SyntheticShapes, TrainTransform
from convscale.methods.ema import ModelEMA, ema_decay_at
from convscale.runs.checkpoint import TrainState, read_run_config
from convscale.train import (
    TrainConfig,
    fit,
    load_config,
    lr_at,
    param_groups,
    read_checkpoint,
    write_checkpoint,
)
from convscale.train.optimizer import RMSpropTF, create_optimizer

TINY = {
    "model": "test_resnet",
    "batch_size": 16,
    "shapes_train": 96,
    "shapes_val": 32,
    "shapes_res": 32,
    "workers": 0,
    "warmup_epochs": 0.5,
}


def test_shapes_are_deterministic_and_balanced():
    a, b = SyntheticShapes("train", size=20, res=32), SyntheticShapes("train", size=20, res=32)
    for i in (0, 7, 19):
        assert np.array_equal(np.asarray(a[i][0]), np.asarray(b[i][0])) and a[i][1] == b[i][1]
    assert not np.array_equal(np.asarray(a[0][0]), np.asarray(SyntheticShapes("val", size=20, res=32)[0][0]))
    assert sorted(a.targets) == sorted(list(range(10)) * 2)
    assert a[3][0].size == (32, 32) and a[3][0].mode == "RGB"
    with pytest.raises(ValueError, match="split"):
        SyntheticShapes("test")


def test_epoch_order_ranks_together_see_the_single_process_batches():
    single = EpochOrder(50, 8, shuffle=True, seed=3)
    single.set_epoch(2)
    ranks = [EpochOrder(50, 8, shuffle=True, seed=3, rank=r, world=2) for r in range(2)]
    for r in ranks:
        r.set_epoch(2)
    one = [i for i, _ in single]
    per_rank = [[i for i, _ in r] for r in ranks]
    assert single.batches == 6 and len(one) == 48
    for k in range(6):
        assert sorted(one[8 * k : 8 * k + 8]) == sorted(per_rank[0][4 * k : 4 * k + 4] + per_rank[1][4 * k : 4 * k + 4])
    single.set_epoch(2, start=4)  # resume inside the epoch: the same remaining batches, the same augmentation seeds
    assert list(single) == _order_pairs(3, 2)[32:]


def _order_pairs(seed: int, epoch: int) -> list[tuple[int, int]]:
    order = EpochOrder(50, 8, shuffle=True, seed=seed)
    order.set_epoch(epoch)
    return list(order)


def test_train_transform_is_a_function_of_its_generator():
    img = SyntheticShapes("train", size=1, res=64)[0][0]
    t = TrainTransform(32, scale=(0.3, 1))
    x1, x2 = t(img, np.random.default_rng(5)), t(img, np.random.default_rng(5))
    assert x1.shape == (3, 32, 32) and torch.equal(x1, x2)
    assert not torch.equal(x1, t(img, np.random.default_rng(6)))


def test_lr_schedule_warmup_then_cosine():
    assert lr_at(0, 100, 1.0, warmup=10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, warmup=10) == pytest.approx(1.0)
    assert lr_at(10, 100, 1.0, warmup=10) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, warmup=10) == pytest.approx(0.5)
    assert lr_at(100, 100, 1.0, warmup=10, minimum=0.01) == pytest.approx(0.01)


def test_no_weight_decay_on_norms_biases_and_gains():
    model = create_model("test_convnext")
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.dim() >= 2 for p in decay["params"]) and no_decay["weight_decay"] == 0
    no_decay_names = [names[id(p)] for p in no_decay["params"]]
    assert any("norm" in n for n in no_decay_names) and any(n.endswith("bias") for n in no_decay_names)
    assert any("gamma" in n for n in no_decay_names)  # layer scale
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_ema_warmup_and_update():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1) and ema_decay_at(10**6, 0.999) == 0.999
    model = nn.Linear(2, 2)
    ema = ModelEMA(model, 0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    before = ema.module.weight.clone()
    ema.update(model)  # decay min(0.5, 1/10) = 0.1
    assert torch.allclose(ema.module.weight, 0.1 * before + 0.9)


def test_config_validation_names_the_key(tmp_path):
    with pytest.raises(ValueError, match="'lr'"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match="'optimizer'"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig(model="resnet9000")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 3\nlr: 0.2\n")
    cfg = load_config(recipe, lr=0.3)
    assert cfg.epochs == 3 and cfg.lr == 0.3  # flags override the recipe
    recipe.write_text("epocs: 3\n")
    with pytest.raises(ValueError, match="unknown config key 'epocs'"):
        load_config(recipe)


def test_restored_optimizer_state_takes_its_parameters_layout(tmp_path):
    """Checkpoints store tensors contiguous; fused AdamW walks its state with the parameter's strides, so a restored
    state must be channels_last again where the parameter is, or the next steps go wrong (silently)."""
    torch.manual_seed(0)
    model = create_model("test_resnet", num_classes=3).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)

    def step(net, opt):
        torch.manual_seed(1)  # the same dropout / drop-path masks for both
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()

    straight = create_optimizer(model, "adamw", 1e-2, 0.05)
    step(model, straight)
    saved = copy.deepcopy(model)
    write_checkpoint(
        tmp_path / "c.safetensors", model=model, optimizer=straight, state=TrainState(), config={}, classes=[]
    )
    ckpt = read_checkpoint(tmp_path / "c.safetensors")
    other = copy.deepcopy(saved)
    restored = create_optimizer(other, "adamw", 1e-2, 0.05)
    ckpt.restore_optimizer(restored)
    conv = next(p for p in other.parameters() if p.dim() == 4)
    layout_kept = restored.state[conv]["exp_avg"].stride() == conv.stride()
    step(model, straight)
    step(other, restored)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters(), strict=True))
    assert layout_kept


def test_checkpoint_round_trip_and_pickles_are_refused(tmp_path):
    model = create_model("test_resnet", num_classes=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    path = write_checkpoint(
        tmp_path / "c.safetensors",
        model=model,
        optimizer=opt,
        state=TrainState(epoch=2, batch=5),
        config={"model": "test_resnet"},
        classes=["a", "b", "c"],
    )
    ckpt = read_checkpoint(path)
    assert ckpt.state.epoch == 2 and ckpt.state.batch == 5 and ckpt.classes == ["a", "b", "c"]
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.weights()[k], v)
    model2 = create_model("test_resnet", num_classes=3)
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)
    ckpt.restore_optimizer(opt2)
    for p1, p2 in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(opt.state[p1]["momentum_buffer"], opt2.state[p2]["momentum_buffer"])

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"model": Exploit()}))
    with pytest.raises(ValueError, match="not a convscale training checkpoint"):
        read_checkpoint(evil)
    evil_pth = tmp_path / "evil.pth"
    evil_pth.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ValueError, match="not a convscale training checkpoint"):
        read_checkpoint(evil_pth)
    assert not marker.exists()  # nothing ran


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir / "checkpoints" / "last.safetensors").weights()


def test_short_run_writes_its_folder(tmp_path):
    result = fit(TrainConfig(**TINY, epochs=2, out=str(tmp_path), name="run"), log=lambda *_: None)
    run = result.run_dir
    assert run == tmp_path / "run"
    for name in ("config.yaml", "metrics.csv", "curves.png", "checkpoints/last.safetensors"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "val_top1" in rows[0] and "ema_top1" in rows[0] and "loader_wait_s" in rows[0]
    assert 0 <= result.metrics["val_top1"] <= 100


def test_resume_mid_epoch_ends_with_identical_weights(tmp_path):
    base = {**TINY, "epochs": 2, "drop_rate": 0.2, "deterministic": True}
    straight = fit(TrainConfig(**base, out=str(tmp_path), name="straight"), log=lambda *_: None)
    cut = fit(TrainConfig(**base, out=str(tmp_path), name="cut", max_steps=9), log=lambda *_: None)
    assert read_checkpoint(cut.run_dir / "checkpoints" / "last.safetensors").state.batch == 3  # inside epoch 2
    resumed = fit(TrainConfig(**base, out=str(tmp_path), name="cut"), resume=cut.run_dir, log=lambda *_: None)
    a, b = _weights(straight.run_dir), _weights(resumed.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_data_is_skipped_and_counted(tmp_path):
    root = tmp_path / "data"
    shapes = SyntheticShapes("train", size=40, res=32)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
    good = 0
    for i in range(24):
        img, _ = shapes[i]
        split = "train" if i < 16 else "val"
        img.save(root / split / ("a", "b")[i % 2] / f"{i}.png")
        good += split == "train"
    img = shapes[30][0]
    img.convert("L").save(root / "train" / "a" / "gray.jpg")
    img.convert("RGBA").save(root / "train" / "b" / "rgba.png")
    img.convert("CMYK").save(root / "train" / "a" / "cmyk.jpg")
    (root / "train" / "a" / "empty.jpg").write_bytes(b"")
    (root / "train" / "b" / "notes.txt").write_text("not an image")
    full = (root / "train" / "a" / "0.png").read_bytes()
    (root / "train" / "a" / "truncated.png").write_bytes(full[: len(full) // 2])
    (root / "train" / "b" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff" + b"garbage" * 50)
    ds = ImageFolder(root / "train")
    decoded = [ds[i] for i in range(len(ds))]
    assert sum(s is None for s in decoded) == 4 and all(s[0].mode == "RGB" for s in decoded if s is not None)
    logs: list[str] = []
    result = fit(
        TrainConfig(
            **{**TINY, "batch_size": 23}, data=str(root), epochs=1, train_res=32, out=str(tmp_path), name="bad"
        ),
        log=logs.append,
    )
    assert len([line for line in logs if line.startswith("skipped ")]) == 4  # one plain line each (issue 29's 6)
    assert result.metrics["skipped"] == 4
    assert result.metrics["train_images"] == good + 3  # every good image: 16 PNGs, grayscale, RGBA, CMYK


def test_missing_or_empty_split_is_an_error_before_training(tmp_path):
    with pytest.raises(ValueError, match="no val/ folder"):
        (tmp_path / "d" / "train" / "a").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "d" / "train" / "a" / "x.png")
        fit(TrainConfig(**TINY, data=str(tmp_path / "d"), out=str(tmp_path)), log=lambda *_: None)
    (tmp_path / "d" / "val").mkdir()
    with pytest.raises(ValueError, match="val holds no files"):
        fit(TrainConfig(**TINY, data=str(tmp_path / "d"), out=str(tmp_path)), log=lambda *_: None)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "convscale.cli", *args]


def _tiny_flags(tmp_path: Path, name: str, **extra: object) -> list[str]:
    flags = {**TINY, "epochs": 2, "out": str(tmp_path), "name": name, "drop_rate": 0.2, **extra}
    out = []
    for k, v in flags.items():
        out += ["--" + k.replace("_", "-"), str(v)]
    return [*out, "--deterministic", "--amp", "none"]  # runs compared bit for bit: one precision, not the probe's pick


_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.mark.parametrize("method", ["plain", "teacher+sam"])
def test_sigkill_at_a_random_step_then_resume_gives_identical_weights(tmp_path, method):
    """A run killed (SIGKILL, no chance to save) at a random step and resumed from its last checkpoint ends with
    the same weights, bit for bit, as a run that was never interrupted (CPU, one thread, deterministic) — also
    distilling from a teacher (function matching) with SAM."""
    # 9x the arithmetic per step of 32 px, and a kill from the first half: at least 6 steps (over a second) between
    # the poll that sees the step and the run's end, so that a poller starved by a busy machine still lands in time
    slow: dict[str, object] = {"shapes_res": 96}
    if method == "teacher+sam":
        teacher = fit(TrainConfig(**TINY, epochs=1, out=str(tmp_path), name="teacher"), log=lambda *_: None)
        slow |= {"teacher": teacher.run_dir, "distill": "function-matching", "sam": 0.05}
    subprocess.run(_cli("train", *_tiny_flags(tmp_path, "straight", **slow)), check=True, env=_ENV, capture_output=True)
    ckpt = tmp_path / "killed" / "checkpoints" / "last.safetensors"
    proc = subprocess.Popen(
        _cli("train", *_tiny_flags(tmp_path, "killed", checkpoint_steps=1, **slow)),
        env=_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_after = random.Random().randint(2, 6)  # a random step of the first half of the 12
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if ckpt.exists():
            try:
                st = read_run_config(ckpt)[1]  # the header alone: a quick look
            except ValueError:
                st = None
            if st is not None and st.epoch * 6 + st.batch >= kill_after:
                break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = read_checkpoint(ckpt).state
    assert killed_at.epoch * 6 + killed_at.batch < 12, "the run finished before the kill"
    subprocess.run(
        _cli("train", *_tiny_flags(tmp_path, "killed", **slow), "--resume", str(tmp_path / "killed")),
        check=True,
        env=_ENV,
        capture_output=True,
    )
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)


_WRITER = """
import sys, torch
from convscale import create_model
from convscale.train import write_checkpoint
from convscale.runs.checkpoint import TrainState, read_run_config
model = create_model("test_resnet")
model.register_buffer("ballast", torch.randn(8_000_000))  # 32 MB: the write takes a while
opt = torch.optim.SGD(model.parameters(), lr=0.1)
i = 0
while True:
    i += 1
    write_checkpoint(sys.argv[1], model=model, optimizer=opt, state=TrainState(step=i), config={}, classes=["a"])
    print(i, flush=True)
"""


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    path = tmp_path / "last.safetensors"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=_ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "1"  # one checkpoint is complete; the next write has started
    time.sleep(random.Random().uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = read_checkpoint(path)  # whole, not a torn file
    assert ckpt.state.step >= 1 and ckpt.weights()["ballast"].numel() == 8_000_000


def test_non_finite_steps_are_skipped_then_the_run_stops_with_its_checkpoint_intact(tmp_path, monkeypatch):
    from convscale.train import loop
    from convscale.train.steps import StepResult

    real = loop.train_step
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2 or calls["n"] > 7:  # one isolated bad step in epoch 1, then a bad streak in epoch 2
            return StepResult(float("nan"), 0, 16, False)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", flaky)
    with pytest.raises(loop.TrainingStopped, match="3 consecutive non-finite steps"):
        fit(TrainConfig(**TINY, epochs=3, max_nonfinite=3, out=str(tmp_path), name="nan"), log=lambda *_: None)
    ckpt = read_checkpoint(tmp_path / "nan" / "checkpoints" / "last.safetensors")
    assert ckpt.state.epoch == 1 and ckpt.state.batch == 0 and ckpt.state.nonfinite == 1  # the end of epoch 1
    assert all(torch.isfinite(v).all() for v in ckpt.weights().values())


def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
    ckpt = tmp_path / "int" / "checkpoints" / "last.safetensors"
    proc = subprocess.Popen(
        _cli("train", *_tiny_flags(tmp_path, "int", epochs=50)),
        env=_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "int" / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted; saved" in err and "Traceback" not in err
    assert read_checkpoint(ckpt).state.epoch >= 1


def test_eval_and_predict_from_a_run(tmp_path, capsys):
    from convscale.cli import main

    fit(TrainConfig(**TINY, epochs=1, out=str(tmp_path), name="r"), log=lambda *_: None)
    assert main(["eval", "--checkpoint", str(tmp_path / "r"), "--workers", "0"]) == 0
    assert "top-1" in capsys.readouterr().out
    img = tmp_path / "x.png"
    SyntheticShapes("val", size=1, res=32)[0][0].save(img)
    assert main(["predict", "--checkpoint", str(tmp_path / "r"), str(img)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(img)) and line.count("%") == 5
    assert main(["train", "--epochs", "0"]) == 2
    assert "config key 'epochs'" in capsys.readouterr().err


@pytest.mark.parametrize("sam", [False, True])
def test_ddp_two_processes_match_one(tmp_path, sam):
    """torchrun, 2 processes on gloo, a LayerNorm model (no batch statistics), no dropout, SGD: the same global
    batches and gradients as one process, so the same weights up to float rounding (summation order) — with SAM
    too, whose ascent is taken along the synchronised gradient."""
    flags = "--model test_convnext --epochs 1 --batch-size 16 --shapes-train 64 --shapes-val 16 --shapes-res 32"
    flags += " --workers 0 --no-ema --drop-rate 0 --drop-path-rate 0 --optimizer sgd --lr 0.05 --amp none"
    flags += " --sam 0.1" if sam else ""
    flags = [*flags.split(), "--out", str(tmp_path)]
    subprocess.run(_cli("train", *flags, "--name", "one"), check=True, env=_ENV, capture_output=True)
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "convscale.cli",
    ]
    run = subprocess.run([*torchrun, "train", *flags, "--name", "two"], env=_ENV, capture_output=True, text=True)
    why = [line for line in run.stderr.splitlines() if "what()" in line or "terminate" in line or "Error" in line]
    assert run.returncode == 0, "\n".join(why[:10]) + "\n" + run.stderr[-2000:]
    assert run.stdout.count("done:") == 1  # rank 0 reports
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), k


def test_compiled_progressive_run_compiles_once_per_stage_size(tmp_path):
    """``--compile`` with two progressive stages (32 then 64 px): one graph per size, each first step logged with its
    seconds, and no other recompilation (the last, incomplete batch is dropped while training)."""
    logs: list[str] = []
    cfg = TrainConfig(**{**TINY, "shapes_res": 64}, epochs=2, stages=2, size_start=32, compile=True, out=str(tmp_path))
    fit(cfg, log=logs.append)
    compiled = [line for line in logs if line.startswith("compiled for")]
    assert [line.split(":")[0] for line in compiled] == ["compiled for 16 x 32 px", "compiled for 16 x 64 px"]
    assert compiled[-1].endswith("(graph 2)") and " s (graph" in compiled[0]
    assert sum(line.startswith("CPU allocator: freed memory kept") for line in logs) == 1  # utils/allocator.py


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_localhost_match_one_process(tmp_path):
    """Two torchrun "machines" of one process each (``--nnodes 2``, a c10d rendezvous on 127.0.0.1), each with the
    image cache on its own disk (``--cache-dir``), train as one process does: the same weights."""
    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", per_class=8, val_per_class=2, res=40)
    flags = f"--model test_convnext --data {data} --epochs 1 --batch-size 8 --train-res 32 --cache-res 40"
    flags += " --workers 0 --no-ema --drop-rate 0 --drop-path-rate 0 --optimizer sgd --lr 0.05"
    flags = [*flags.split(), "--out", str(tmp_path / "runs")]
    one = _cli("train", *flags, "--name", "one", "--cache-dir", str(tmp_path / "cache-one"))
    subprocess.run(one, check=True, env=_ENV, capture_output=True)
    port = _free_port()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two-nodes"]  # fmt: skip
    nodes = []
    for node in ("a", "b"):  # each "machine" keeps its cache on its own disk
        cmd = [*torchrun, "-m", "convscale.cli", "train", *flags, "--name", "two", "--cache-dir", str(tmp_path / node)]
        nodes.append(subprocess.Popen(cmd, env=_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errors = [proc.communicate(timeout=300)[1] for proc in nodes]
    assert [proc.returncode for proc in nodes] == [0, 0], errors[0][-1500:] + errors[1][-1500:]
    assert all(list((tmp_path / node).glob("*/index.npz")) for node in ("a", "b"))  # a cache per node
    a, b = _weights(tmp_path / "runs" / "one"), _weights(tmp_path / "runs" / "two")
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), k


@pytest.mark.parametrize("sam", [None, 0.1])
def test_gradient_accumulation_is_the_same_step(sam):
    """Two slices of 8 accumulate to the gradient of one batch of 16 (LayerNorm model: no batch statistics), with
    SAM's two passes too."""
    from convscale.methods.sam import sam_gradient
    from convscale.train import create_optimizer, train_step
    from convscale.train.steps import StepSettings, gradient

    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    models = [create_model("test_convnext", num_classes=10, drop_path_rate=0.0) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    for model, accum in zip(models, (1, 2), strict=True):
        opt = create_optimizer(model, "sgd", 0.1, 0.0)
        how = StepSettings(accum_steps=accum, gradient=sam_gradient(gradient, sam) if sam else None)
        r = train_step(model, x, y, opt, how)
        assert r.finite and r.count == 16
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_non_finite_batch_leaves_the_weights_alone():
    from convscale.train import create_optimizer, train_step

    model = create_model("test_resnet", num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    opt = create_optimizer(model, "adamw", 1e-3, 0.05)
    x = torch.randn(4, 3, 32, 32)
    x[0, 0, 0, 0] = float("nan")
    r = train_step(model, x, torch.randint(0, 10, (4,)), opt)
    assert not r.finite
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running statistics restored too


def test_rmsprop_tf_follows_tensorflows_update():
    """ms = a*ms + (1-a)*g^2 (from ms = 1), mom = m*mom + lr*g/sqrt(ms + eps), p -= mom; weight decay into g."""
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(5, 3))
    opt = RMSpropTF([{"params": [p], "weight_decay": 0.01}], lr=0.1, alpha=0.9, eps=1e-3, momentum=0.9)
    w, ms, mom = p.detach().double().clone(), torch.ones(5, 3, dtype=torch.float64), torch.zeros(5, 3).double()
    for _ in range(4):
        g = torch.randn(5, 3)
        p.grad = g.clone()
        opt.step()
        gd = g.double() + 0.01 * w
        ms = 0.9 * ms + 0.1 * gd * gd
        mom = 0.9 * mom + 0.1 * gd / (ms + 1e-3).sqrt()
        w = w - mom
    torch.testing.assert_close(p.detach().double(), w, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_agc_and_rmsprop_run_on_cpu(tmp_path):
    cfg = TrainConfig(**TINY, epochs=1, amp="bf16", agc=0.01, optimizer="rmsprop", lr=1e-3, out=str(tmp_path))
    result = fit(cfg, log=lambda *_: None)
    assert np.isfinite(result.metrics["train_loss"]) and result.metrics["nonfinite"] == 0
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        fit(TrainConfig(**TINY, amp="fp16", device="cpu", out=str(tmp_path)), log=lambda *_: None)


def test_progressive_run_follows_its_printed_schedule(tmp_path):
    lines: list[str] = []
    cfg = TrainConfig(
        **{**TINY, "shapes_res": 48},
        epochs=4,
        stages=2,
        size_start=32,
        randaug_n=2,
        randaug_m=9,
        randaug_m_start=3,
        mixup=0.4,
        mixup_start=0.0,
        cutmix=1.0,
        drop_path_rate=0.1,
        drop_path_rate_start=0.0,
        random_erasing=0.25,
        out=str(tmp_path),
        name="prog",
    )
    fit(cfg, log=lines.append)
    table = next(line for line in lines if line.startswith("progressive learning")).splitlines()[2:]
    printed = [row.split() for row in table]  # stage, epochs, size, dropout, drop path, RandAug, mixup, cutmix, ...
    assert [(r[1], int(r[2])) for r in printed] == [("1-2", 32), ("3-4", 48)]
    rows = list(csv.DictReader((tmp_path / "prog" / "metrics.csv").open()))
    assert [int(r["stage"]) for r in rows] == [1, 1, 2, 2]
    assert [int(r["train_res"]) for r in rows] == [32, 32, 48, 48]
    assert [float(r["randaug_m"]) for r in rows] == [3, 3, 9, 9]
    assert [float(r["mixup"]) for r in rows] == [0, 0, 0.4, 0.4]
    assert [float(r["drop_path_rate"]) for r in rows] == [0, 0, 0.1, 0.1]
    for r, p in zip(rows, [printed[0]] * 2 + [printed[1]] * 2, strict=True):
        assert float(r["randaug_m"]) == float(p[5]) and float(r["mixup"]) == float(p[6])
    assert all(math.isfinite(float(r["train_loss"])) for r in rows)
    assert (tmp_path / "prog" / "schedule.png").stat().st_size > 1000


def test_constant_memory_takes_larger_batches_at_small_sizes(tmp_path):
    """Stage 1 at half the final size takes a 4x batch (fewer, larger steps) with a 4x learning rate; the
    learning-rate schedule still spans the same epochs, and the EMA counts the larger steps as four."""
    lines: list[str] = []
    cfg = TrainConfig(
        **{**TINY, "shapes_res": 64},
        epochs=4,
        stages=2,
        size_start=32,
        constant_memory=True,
        lr=1e-3,
        out=str(tmp_path),
        name="cm",
    )
    fit(cfg, log=lines.append)
    table = next(line for line in lines if line.startswith("progressive learning")).splitlines()[2:]
    printed = [row.split() for row in table]
    assert [(int(r[2]), int(r[-2]), float(r[-1])) for r in printed] == [(32, 64, 4.0), (64, 16, 1.0)]
    rows = list(csv.DictReader((tmp_path / "cm" / "metrics.csv").open()))
    assert [int(r["batch_size"]) for r in rows] == [64, 64, 16, 16]
    assert [int(r["step"]) for r in rows] == [1, 2, 8, 14]  # 96 images: 1 step of 64, then 6 of 16
    base_steps = 96 // 16
    first = 4 * lr_at(0, 4 * base_steps, 1e-3, round(0.5 * base_steps))  # epoch 1's only step, at position 0
    assert float(rows[0]["lr"]) == pytest.approx(first)
    last = lr_at(4 * base_steps - 1, 4 * base_steps, 1e-3, round(0.5 * base_steps))
    assert float(rows[-1]["lr"]) == pytest.approx(last)


def test_constant_memory_batch_larger_than_the_data_is_an_error(tmp_path):
    cfg = TrainConfig(
        **{**TINY, "shapes_res": 64, "batch_size": 32},
        epochs=2,
        stages=2,
        size_start=32,
        constant_memory=True,
        out=str(tmp_path),
    )
    with pytest.raises(ValueError, match=r"constant_memory.*128 is larger than the 96 images"):
        fit(cfg, log=lambda *_: None)


@pytest.mark.parametrize("name", ["efficientnetv2_s", "efficientnet_b0", "convnext_tiny", "nfnet_f0", "repvgg_a0"])
def test_every_shipped_recipe_loads_and_validates_through_the_cli(name, capsys):
    import yaml

    from convscale.cli import main
    from convscale.runs.settings import list_recipes

    assert name in list_recipes()
    assert main(["train", "--recipe", name, "--batch-size", "128", "--epochs", "30", "--check"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    raw = yaml.safe_load((Path(__import__("convscale").__file__).parent / "recipes" / f"{name}.yaml").read_text())
    ref = raw["adapt"]
    assert cfg["model"] == raw["model"] and cfg["batch_size"] == 128 and cfg["epochs"] == 30
    assert cfg["lr"] == pytest.approx(raw["lr"] * 128 / ref["batch_size"])  # linear scaling to the user's batch
    assert cfg["warmup_epochs"] == pytest.approx(raw["warmup_epochs"] * 30 / ref["epochs"])  # warm-up to the budget
    assert main(["train", "--recipe", name, "--lr", "0.5", "--check"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["lr"] == 0.5  # an explicit flag wins over the adaptation


def test_loader_workers_start_once_per_run_and_read_what_fresh_ones_would(tmp_path, monkeypatch):
    """The training loader and each validation size's loader are built once and kept (their worker processes
    persist across epochs); with a worker the run has the weights of the run without one, to the bit."""
    from conftest import make_image_folder
    from convscale.train import loop

    data = make_image_folder(tmp_path / "data", per_class=8, val_per_class=2, res=40)
    common = dict(model="test_resnet", data=str(data), epochs=2, batch_size=8, ema=False, out=str(tmp_path / "runs"),
                  train_res=32, randaug_n=1, mixup=0.2)  # fmt: skip
    built = []
    real = loop.build_loader
    monkeypatch.setattr(loop, "build_loader", lambda *a, **kw: built.append(kw["workers"]) or real(*a, **kw))
    inline = fit(TrainConfig(**common, workers=0, name="inline"), log=lambda *_: None)
    sizes = len(built) - 1  # the validation sizes (train and test size)
    assert sizes in (1, 2) and built == [0] * (1 + sizes)  # two epochs, two validations each: built once
    worker = fit(TrainConfig(**common, workers=1, name="worker"), log=lambda *_: None)
    assert built[1 + sizes :] == [1] * (1 + sizes)
    a = read_checkpoint(inline.run_dir / "checkpoints" / "last.safetensors").weights()
    b = read_checkpoint(worker.run_dir / "checkpoints" / "last.safetensors").weights()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

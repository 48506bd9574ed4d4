"""Regression tests for the defects found when convscale was tried as a new user would (issue 14), one per defect,
numbered as the issue lists them. Each failed on the code before its fix."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_image_folder, one_line_error
from convscale.cli import main
from convscale.data import SyntheticShapes, load_rgb
from convscale.train import TrainConfig, TrainingStopped, fit, load_config, read_checkpoint

SMALL = {
    "model": "test_resnet",
    "batch_size": 16,
    "shapes_train": 32,
    "shapes_val": 16,
    "shapes_res": 32,
    "workers": 0,
    "warmup_epochs": 0.5,
}
_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def quiet(*_):
    return None


def flags(**values) -> list[str]:
    out = []
    for key, value in {**SMALL, **values}.items():
        out += ["--" + key.replace("_", "-"), str(value)]
    return out


def rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "convscale.cli", *args]


@pytest.fixture
def run(tmp_path) -> Path:
    """A finished one-epoch run of test_resnet on a small synthetic-shapes."""
    return fit(TrainConfig(**SMALL, epochs=1, out=str(tmp_path), name="r"), log=quiet).run_dir


def test_defect_01_ctrl_c_on_an_epochs_last_batch_saves_a_resumable_checkpoint(tmp_path, monkeypatch):
    """One step per epoch: the interrupt lands on the epoch's last batch."""
    import convscale.train.loop as loop

    base = {**SMALL, "shapes_train": 16, "epochs": 3, "drop_rate": 0.2, "deterministic": True}
    straight = fit(TrainConfig(**base, out=str(tmp_path), name="straight"), log=quiet).run_dir
    real, calls = loop.train_step, []

    def interrupted(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(loop, "train_step", interrupted)
    with pytest.raises(TrainingStopped, match="interrupted; saved") as stopped:
        fit(TrainConfig(**base, out=str(tmp_path), name="cut"), log=quiet)
    assert stopped.value.exit_code == 130
    monkeypatch.setattr(loop, "train_step", real)
    state = read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors").state
    assert (state.epoch, state.batch) == (1, 1)  # saved after the last batch, before the epoch's end
    fit(TrainConfig(**base, out=str(tmp_path), name="cut"), resume=tmp_path / "cut", log=quiet)
    a = read_checkpoint(straight / "checkpoints" / "last.safetensors").weights()
    b = read_checkpoint(tmp_path / "cut" / "checkpoints" / "last.safetensors").weights()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in rows(straight)] == [r["train_loss"] for r in rows(tmp_path / "cut")]


def test_defect_02_resume_takes_the_runs_config_and_refuses_unsafe_changes(run, capsys):
    config = (run / "config.yaml").read_bytes()
    for flag, value in (("--optimizer", "sgd"), ("--lr", "0.5"), ("--batch-size", "8"), ("--model", "test_convnext")):
        assert main(["train", "--resume", str(run), flag, value]) == 2
        one_line_error(capsys, f"'{flag[2:].replace('-', '_')}'", "cannot change on --resume")
    assert (run / "config.yaml").read_bytes() == config  # refused before anything was written
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0  # no --model: the run's own
    assert [int(r["epoch"]) for r in rows(run)] == [1, 2] and "model: test_resnet" in (run / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 2  # fewer epochs than the run has trained
    one_line_error(capsys, "'epochs'", "has trained 2 epochs")
    assert main(["train", "--resume", str(run)]) == 0  # finished: the same command again is done, and says how to go on
    assert "already complete (2 epochs): nothing to do; --epochs above 2 trains it further" in capsys.readouterr().out


def test_defect_03_stale_temporary_checkpoints_are_removed(run, capsys):
    stale = [run / "checkpoints" / f".last.safetensors.{pid}.tmp" for pid in (101, 202, 303)]
    for path in stale:
        path.write_bytes(b"\0" * 100_000)
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert not any(p.exists() for p in stale)
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.safetensors"]


def test_defect_04_a_split_where_nothing_decodes_is_an_error_and_val_failures_are_counted(tmp_path, capsys):
    root = make_image_folder(tmp_path / "data", per_class=4, val_per_class=2)
    for path in (root / "train").rglob("*.png"):
        path.write_bytes(b"\x89PNG garbage")
    assert main(["train", "--data", str(root), *flags(epochs=1, train_res=32, out=tmp_path / "o")]) == 2
    one_line_error(capsys, "open as images", "training needs at least 2")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("metrics.csv"))
    good = make_image_folder(tmp_path / "good", per_class=6, val_per_class=2)
    victim = next((good / "val").rglob("*.png"))
    victim.write_bytes(victim.read_bytes()[:60])  # truncated: its header opens, its pixels do not
    cfg = TrainConfig(**{**SMALL, "batch_size": 6}, data=str(good), epochs=1, train_res=32, out=str(tmp_path), name="v")
    result = fit(cfg, log=quiet)
    assert result.metrics["val_skipped"] == 1
    assert main(["eval", str(result.run_dir), "--workers", "0"]) == 0
    assert "(5 of 6 images, 1 skipped" in capsys.readouterr().out


#: about 500 bytes that expand to 9^9 strings under one key
_BOMB = "epochs:\n  - &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  - &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("epochs: !!python/object/apply:os.system ['touch {marker}']\n", None),
        ("epochs: [1, 2\nlr: 0.1\n", None),
        ("name: [1, 2]\n", "name"),
        ("model: {a: 1}\n", "model"),
        ("- 1\n- 2\n", None),
        ("3: 4\n", None),
    ],
)
def test_defect_05_bad_config_files_are_one_line_errors(tmp_path, capsys, text, key):
    marker = tmp_path / "ran"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text.replace("{marker}", str(marker)))
    assert main(["train", "--config", str(recipe), "--check"]) == 2
    err = one_line_error(capsys)
    assert len(err) < 600 and not marker.exists()
    if key:
        assert f"config key '{key}'" in err


def test_defect_05_a_yaml_alias_bomb_fails_fast(tmp_path):
    """About 500 bytes expanding to 9^9 elements: the error shows a shortened value, at once."""
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text(_BOMB)
    assert len(recipe.read_bytes()) < 700
    start = time.monotonic()
    proc = subprocess.run(
        cli("train", "--config", str(recipe), "--check"), env=_ENV, capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - start < 30 and proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and len(proc.stderr) < 600 and "Traceback" not in proc.stderr
    assert "config key 'epochs'" in proc.stderr


def _crafted(tmp_path: Path, run: Path, name: str, edit=None, tensors=None, raw: str | None = None) -> Path:
    """A copy of ``run`` whose checkpoint header (or weights) was crafted."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = run / "checkpoints" / "last.safetensors"
    with safe_open(str(src), "pt") as f:
        meta = json.loads(f.metadata()["convscale"])
        weights = {k: f.get_tensor(k) for k in f.keys()}
    if edit is not None:
        edit(meta)
    if tensors is not None:
        tensors(weights)
    dest = tmp_path / name / "checkpoints" / "last.safetensors"
    dest.parent.mkdir(parents=True)
    save_file(weights, str(dest), metadata={"convscale": raw if raw is not None else json.dumps(meta)})
    return dest.parent.parent


CRAFTED = {
    "deep nesting": {"raw": '{"format": "convscale-train/1", "config": ' + "[" * 100_000 + "]" * 100_000 + "}"},
    "a list, not a mapping": {"raw": "[1, 2, 3]"},
    "config a list": {"edit": lambda m: m.update(config=[1, 2])},
    "no model": {"edit": lambda m: m["config"].pop("model")},
    "classes do not match the weights": {"edit": lambda m: m.update(classes=["a", "b"])},
    "model does not match the weights": {"edit": lambda m: m["config"].update(model="resnet50")},
    "a million class names": {"edit": lambda m: m.update(classes=[f"c{i}" for i in range(1_000_000)])},
    "class names not strings": {"edit": lambda m: m.update(classes=[1, 2, 3])},
    "unexpected weights": {"tensors": lambda w: w.update({"model.extra.weight": torch.zeros(3)})},
    "state not a mapping": {"edit": lambda m: m.update(state="x")},
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_defect_06_crafted_checkpoint_metadata_is_one_line_error(run, tmp_path, capsys, case):
    crafted = _crafted(tmp_path, run, "c", **CRAFTED[case])
    image = tmp_path / "x.png"
    SyntheticShapes("val", size=1, res=32)[0][0].save(image)
    start = time.monotonic()
    assert main(["eval", "--checkpoint", str(crafted), "--workers", "0"]) == 2
    one_line_error(capsys)
    assert main(["predict", "--checkpoint", str(crafted), str(image)]) == 2
    one_line_error(capsys)
    assert time.monotonic() - start < 30


def test_defect_07_predict_skips_a_decompression_bomb_and_fails_when_nothing_reads(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 100 x 100 image is then a bomb (over twice the limit)
    bomb, good = tmp_path / "bomb.png", tmp_path / "good.png"
    Image.new("RGB", (100, 100)).save(bomb)
    SyntheticShapes("val", size=1, res=16)[0][0].save(good)
    assert main(["predict", "--checkpoint", str(run), str(bomb)]) == 2
    err = capsys.readouterr().err
    assert "bomb.png: cannot read as an image" in err and "none of the 1 images could be read" in err
    assert "Traceback" not in err
    assert main(["predict", "--checkpoint", str(run), str(bomb), str(good)]) == 0
    assert capsys.readouterr().out.startswith(f"{good}: ")


def test_defect_08_eval_and_predict_use_an_image_folder_runs_own_size_and_count_failures(tmp_path, capsys):
    data = make_image_folder(tmp_path / "data", per_class=6, val_per_class=3)
    broken = data / "val" / "star" / "broken.png"
    broken.write_bytes(b"not a png")
    cfg = TrainConfig(**{**SMALL, "batch_size": 6}, data=str(data), epochs=1, train_res=40, out=str(tmp_path), name="f")
    run = fit(cfg, log=quiet).run_dir
    assert main(["eval", "--checkpoint", str(run), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "val at 40 px" in out and "(9 of 10 images, 1 skipped" in out
    assert main(["predict", "--checkpoint", str(run), str(broken), str(next((data / "val").rglob("*.png")))]) == 0


def test_defect_09_two_runs_with_one_name_get_two_folders(tmp_path):
    """Run A takes the folder and is still in its first epoch (no checkpoint, no metrics yet) when run B of the same
    name starts: B must get a folder of its own."""
    log = tmp_path / "a.log"
    with open(log, "w") as out:
        a = subprocess.Popen(
            cli("train", *flags(model="resnet18", epochs=5, shapes_train=6000, out=tmp_path / "runs", name="same")),
            env=_ENV,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while not (tmp_path / "runs" / "same" / "config.yaml").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        b = subprocess.run(cli("train", *flags(epochs=1, out=tmp_path / "runs", name="same")), env=_ENV)
        a_in_epoch_1 = "epoch 1 " not in log.read_text()
        a.send_signal(signal.SIGTERM)
        a.wait(timeout=120)
    assert b.returncode == 0 and a_in_epoch_1  # B ran while A had neither checkpoint nor metrics
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["same", "same-2"]
    assert "model: resnet18" in (runs / "same" / "config.yaml").read_text()  # A's, untouched by B
    assert "model: test_resnet" in (runs / "same-2" / "config.yaml").read_text()
    assert len(rows(runs / "same-2")) == 1


def test_defect_10_resume_from_a_file_outside_a_run_folder_writes_nothing(run, tmp_path, capsys, monkeypatch):
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(run / "checkpoints" / "last.safetensors", loose / "weights.safetensors")
    before = sorted(tmp_path.rglob("*"))
    assert main(["train", "--resume", str(loose / "weights.safetensors"), "--epochs", "2"]) == 2
    one_line_error(capsys, "not inside a run folder")
    monkeypatch.chdir(loose)
    assert main(["train", "--resume", "weights.safetensors", "--epochs", "2"]) == 2
    one_line_error(capsys, "not inside a run folder")
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("name", ["../../x", "/tmp/convscale-abs", "a/b", "..", ".hidden"])
def test_defect_11_a_run_name_cannot_leave_out(tmp_path, capsys, name):
    assert main(["train", "--name", name, "--out", str(tmp_path / "runs"), "--check"]) == 2
    one_line_error(capsys, "config key 'name'")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: {json.dumps(name)}\n")
    with pytest.raises(ValueError, match="config key 'name'"):
        load_config(recipe)
    assert not (tmp_path / "runs").exists() and not Path("/tmp/convscale-abs").exists()


def test_defect_12_a_mid_epoch_resume_keeps_the_whole_epochs_metrics(tmp_path):
    base = {**SMALL, "shapes_train": 96, "epochs": 2, "drop_rate": 0.2, "deterministic": True}
    straight = fit(TrainConfig(**base, out=str(tmp_path), name="straight"), log=quiet).run_dir
    cut = fit(TrainConfig(**base, out=str(tmp_path), name="cut", max_steps=9), log=quiet).run_dir
    fit(TrainConfig(**base, out=str(tmp_path), name="cut"), resume=cut, log=quiet)
    a, b = rows(straight), rows(cut)
    assert [r["train_images"] for r in b] == ["96", "96"]
    for key in ("train_images", "train_loss", "train_top1", "step", "val_top1", "ema_top1"):
        assert [r[key] for r in a] == [r[key] for r in b], key


def test_defect_13_images_decode_at_their_full_range_and_upright(tmp_path):
    wide = tmp_path / "g16.png"
    Image.fromarray(np.full((4, 6), 30000, dtype=np.uint16)).save(wide)
    assert load_rgb(wide).getpixel((0, 0)) == (117, 117, 117)  # 30000 / 65535 * 255, not clipped to 255
    floats = tmp_path / "f.tiff"
    Image.fromarray(np.full((4, 6), 0.5, dtype=np.float32)).save(floats)
    assert load_rgb(floats).getpixel((0, 0)) == (128, 128, 128)  # 0.5 of the range, not black
    photo = Image.new("RGB", (60, 40), (200, 0, 0))
    photo.paste((0, 0, 200), (0, 0, 10, 40))  # a blue left edge
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    photo.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=95)
    upright = load_rgb(tmp_path / "o.jpg")
    assert upright.size == (40, 60)
    assert upright.getpixel((20, 3))[2] > 150 and upright.getpixel((20, 40))[0] > 150  # the left edge is the top


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"train_res": 4096}, "train_res"),
        ({"test_res": 4096}, "test_res"),
        ({"accum_steps": 100}, "accum_steps"),
        ({"size_multiple": 1000}, "size_multiple"),
        ({"shapes_res": 16}, "shapes_res"),
        ({"lr": float("nan")}, "lr"),
    ],
)
def test_defect_14_unvalidated_training_values_name_their_key(values, key):
    with pytest.raises(ValueError, match=f"config key '{key}'"):
        TrainConfig(**{**SMALL, **values})


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["eval", "RUN", "--batch", "0"], "--batch"),
        (["eval", "RUN", "--res", "1"], "--res"),
        (["predict", "--checkpoint", "RUN", "--res", "0", "x.png"], "--res"),
        (["bench", "test_resnet", "--min-time", "nan"], "--min-time"),
        (["train", "--train-res", "4096", "--check"], "'train_res'"),
        (["train", "--accum-steps", "100", "--batch-size", "16", "--check"], "'accum_steps'"),
    ],
)
def test_defect_14_unvalidated_command_values_are_one_line_errors(run, capsys, argv, named):
    """Refused as given, naming the flag or key, before a model is built or data read."""
    assert main([str(run) if a == "RUN" else a for a in argv]) == 2
    one_line_error(capsys, named)


def test_defect_15_sigterm_saves_and_says_how_to_resume(tmp_path):
    proc = subprocess.Popen(
        cli("train", *flags(epochs=50, out=tmp_path, name="t")), env=_ENV, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "t" / "metrics.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert "terminated; saved" in err and f"--resume {tmp_path / 't'}" in err and "Traceback" not in err
    assert read_checkpoint(tmp_path / "t" / "checkpoints" / "last.safetensors").state.epoch >= 1


def test_defect_15_every_train_flag_has_help_from_its_field(capsys):
    assert main(["train", "--help"]) == 0
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, also at hyphens
    for key, f in TrainConfig.flat_fields():
        doc = f.metadata.get("help")
        assert doc, f"{key} has no documentation"
        assert "".join(doc.split()) in text, key

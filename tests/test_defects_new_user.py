"""Regression tests for the defects found when convscale was tried as a new user and as an attacker would (issue 29),
numbered as the issue lists them. Each failed on the code before its fix."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_image_folder, one_line_error
from convscale.cli import main
from convscale.train import TrainConfig, fit, read_checkpoint

TINY = {"model": "test_resnet", "batch_size": 8, "workers": 0, "warmup_epochs": 0.5, "train_res": 32}
_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("d") / "data", per_class=4, val_per_class=2, res=40)


def _cached_run(data: Path, tmp_path: Path, name: str) -> list[str]:
    logs: list[str] = []
    cfg = TrainConfig(**TINY, data=str(data), epochs=1, out=str(tmp_path / "runs"), name=name, cache_res=40,
                      cache_dir=str(tmp_path / "c"))  # fmt: skip
    fit(cfg, log=logs.append)
    return logs


def _cache_files(tmp_path: Path, pattern: str) -> list[Path]:
    return sorted((tmp_path / "c").glob(f"*/{pattern}"))


def test_defect_01_a_damaged_cache_index_is_rebuilt_and_said(data, tmp_path):
    _cached_run(data, tmp_path, "a")
    for index in _cache_files(tmp_path, "index.npz"):
        index.write_bytes(index.read_bytes()[:100])  # a damaged zip
    logs = _cached_run(data, tmp_path, "b")
    said = [line for line in logs if "rebuilt, the previous cache was damaged" in line]
    assert len(said) == 2 and "index.npz unreadable" in said[0], logs


@pytest.mark.parametrize("damage", ["truncated", "altered"])
def test_defect_02_short_or_altered_pixels_are_rebuilt(data, tmp_path, damage):
    _cached_run(data, tmp_path, "a")
    pixels = _cache_files(tmp_path, "pixels-*.u8")[0]
    raw = bytearray(pixels.read_bytes())
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    else:
        raw[0] ^= 0xFF
    pixels.write_bytes(bytes(raw))
    logs = _cached_run(data, tmp_path, "b")
    said = [line for line in logs if "rebuilt, the previous cache was damaged" in line]
    expected = "bytes" if damage == "truncated" else "altered since it was written"
    assert len(said) == 1 and expected in said[0], logs


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_defect_03_export_leaves_only_the_file_it_reports(tmp_path, capsys, fmt):
    out = tmp_path / "out"
    assert main(["export", "test_resnet", "--out", str(out / f"m.{fmt}"), "--res", "32", "--no-check"]) == 0
    assert [p.name for p in out.iterdir()] == [f"m.{fmt}"]
    # and after a failure (an opset the exporter does not write): nothing beside what was there
    assert main(["export", "test_resnet", "--out", str(out / "n.onnx"), "--opset", "7"]) == 2
    assert [p.name for p in out.iterdir()] == [f"m.{fmt}"]


def test_defect_03_a_failing_export_leaves_no_temporary_files(tmp_path, monkeypatch):
    import convscale.deploy.exporter as exporter

    def refuse(net, x, shapes, path, spec, opset):
        Path(str(path) + ".data").write_bytes(b"side file")  # what the ONNX exporter leaves
        raise ValueError("the exporter refused (simulated)")

    monkeypatch.setattr(exporter, "_onnx", refuse)
    assert main(["export", "test_resnet", "--out", str(tmp_path / "m.onnx"), "--res", "32"]) == 2
    assert list(tmp_path.iterdir()) == []


def test_defect_03_04_deploy_writes_what_it_reports_and_never_overwrites_silently(tmp_path, capsys):
    out = tmp_path / "d"
    argv = ["deploy", "test_resnet", "--out", str(out), "--res", "32", "--batch", "2", "--min-time", "0.05"]
    argv += ["--runtimes", "eager"]
    assert main(argv) == 0
    said = capsys.readouterr().out.splitlines()[-1]
    written = said.removeprefix("wrote ").split(" in ")[0].split(", ")
    assert sorted(p.name for p in out.iterdir()) == sorted(written) == ["deploy.json", "model.pt2", "report.csv"]
    before = (out / "deploy.json").read_bytes()
    assert main(argv) == 2
    one_line_error(capsys, "already holds a deployed model", "--force")
    assert (out / "deploy.json").read_bytes() == before
    assert main([*argv, "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["deploy.json", "model.pt2", "report.csv"]


@pytest.mark.parametrize("kind", ["not images", "empty"])
def test_defect_05_a_class_folder_without_images_stops_the_run(tmp_path, capsys, kind):
    data = make_image_folder(tmp_path / "data", per_class=3, val_per_class=1, res=32)
    odd = data / "train" / "notes"
    odd.mkdir()
    if kind == "not images":
        (odd / "readme.txt").write_text("not an image")
    argv = ["train", "--data", str(data), "--model", "test_resnet", "--epochs", "1", "--workers", "0"]
    argv += ["--train-res", "32", "--out", str(tmp_path / "runs")]
    assert main(argv) == 2
    one_line_error(capsys, "class folder without images: notes", "--allow-empty-classes")
    assert not (tmp_path / "runs").exists()
    assert main([*argv, "--allow-empty-classes", "--batch-size", "8"]) == 0


def test_defect_06_files_failing_after_epoch_1_are_reported_once_in_plain_lines(tmp_path, capsys):
    """A file that breaks during epoch 2 is reported in epoch 2 (it was only reported in epoch 1 before), once, as a
    plain line with its path and reason; the CSV counts per epoch and the summary gives the total."""
    import convscale.train.loop as loop

    data = make_image_folder(tmp_path / "data", per_class=4, val_per_class=1, res=32)
    victim = sorted((data / "train").rglob("*.png"))[0]
    real = loop.end_epoch

    def break_after_epoch_1(t, stage):
        real(t, stage)
        victim.write_bytes(b"\x89PNG\r\n\x1a\n" + b"cut")

    argv = ["train", "--data", str(data), "--model", "test_resnet", "--epochs", "3", "--workers", "0", "--train-res",
            "32", "--batch-size", "4", "--out", str(tmp_path / "runs"), "--name", "r"]  # fmt: skip
    with pytest.MonkeyPatch.context() as m:
        m.setattr(loop, "end_epoch", break_after_epoch_1)
        assert main(argv) == 0
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.startswith("skipped ")]
    assert len(lines) == 1 and str(victim) in lines[0] and "Error" in lines[0], out + err
    assert "Traceback" not in err and "warnings.warn" not in err
    with open(tmp_path / "runs" / "r" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["skipped"] for r in rows] == ["0", "1", "1"] and rows[-1]["skipped_total"] == "1"
    assert "1 training files skipped" in out.splitlines()[-1]
    assert str(victim) in (tmp_path / "runs" / "r" / "skipped.txt").read_text()


def test_defect_07_a_checkpoint_with_pickled_code_is_refused_in_one_line(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": Payload()}, path)
    assert main(["eval", "--model", "test_resnet", "--pretrained", str(path)]) == 2
    err = one_line_error(capsys, "holds pickled Python objects", ".safetensors")
    assert "weights_only" not in err and "ran" not in capsys.readouterr().out


def test_defect_08_messages_point_the_right_way(tmp_path, capsys, monkeypatch):
    assert main(["export", str(tmp_path / "runs" / "missing"), "--out", str(tmp_path / "m.onnx")]) == 2
    one_line_error(capsys, "no such run folder or file")
    assert main(["export", "test_resnet", "--out", "/proc/x/m.onnx", "--res", "32"]) == 2
    one_line_error(capsys, "cannot be written")
    monkeypatch.setenv("CONVSCALE_DATASETS", str(tmp_path / "m.onnx"))
    (tmp_path / "m.onnx").write_text("a file")
    assert main(["datasets", "imagenette2-160"]) == 2
    one_line_error(capsys, "CONVSCALE_DATASETS", "it is a file")


def test_defect_08_predict_on_a_folder_means_every_image_in_it(tmp_path, capsys):
    data = make_image_folder(tmp_path / "data", per_class=2, val_per_class=1, res=32)
    cfg = TrainConfig(**{**TINY, "batch_size": 4}, data=str(data), epochs=1, out=str(tmp_path / "runs"), name="r")
    run = fit(cfg, log=print).run_dir
    capsys.readouterr()
    (data / "val" / "notes.txt").write_text("not an image")
    assert main(["predict", "--checkpoint", str(run), str(data / "val")]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = sorted(str(p) for p in (data / "val").rglob("*.png"))
    assert [line.split(": ")[0] for line in out] == expected
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", "--checkpoint", str(run), str(empty)]) == 2
    one_line_error(capsys, "a folder without image files")


_LATE_SIGINT = """
import os, signal, sys, time
import convscale.train as train
import convscale.train.loop as loop
from convscale.cli import entry

where = sys.argv.pop(1)


def interrupt():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.3)


if where == "teardown":  # after the final checkpoint, while the run ends
    real_teardown = loop.teardown
    loop.teardown = lambda *a, **k: (interrupt(), real_teardown(*a, **k))[1]
else:  # after fit returned, while the command prints its summary
    real_fit = train.fit
    train.fit = lambda *a, **k: (real_fit(*a, **k), interrupt())[0]
entry()
"""


@pytest.mark.parametrize("where", ["teardown", "summary"])
def test_defect_09_ctrl_c_as_a_run_ends(tmp_path, where):
    argv = ["train", "--model", "test_resnet", "--shapes-train", "16", "--shapes-val", "16", "--shapes-res", "32"]
    argv += ["--epochs", "1", "--workers", "0", "--batch-size", "16", "--out", str(tmp_path), "--name", "r"]
    proc = subprocess.run([sys.executable, "-c", _LATE_SIGINT, where, *argv], env=_ENV, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode in (0, 130), (proc.returncode, proc.stderr[-2000:])
    if proc.returncode == 130:
        assert "convscale: interrupted" in proc.stderr
    else:
        assert proc.stdout.splitlines()[-1].startswith("done:")
    assert "Traceback" not in proc.stderr
    assert read_checkpoint(tmp_path / "r" / "checkpoints" / "last.safetensors").state.epoch == 1


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["train", "--res", "32"], "--train-res"),
        (["train", "--resu", "x"], "unrecognized arguments: --resu"),
        (["eval", "x", "--bat", "4"], "unrecognized arguments: --bat"),
        (["bench", "test_resnet", "--min-t", "1"], "unrecognized arguments: --min-t"),
    ],
)
def test_defect_10_no_abbreviations(capsys, argv, said):
    assert main(argv) == 2
    one_line_error(capsys, said)

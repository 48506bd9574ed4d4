"""What a plain ``pip install convscale`` runs: every command, in child processes whose optional packages are hidden
(a folder of stub packages first on ``PYTHONPATH``, each raising ImportError on import, as an absent one does).

Every environment the suite runs in has all the extras installed, so without this test a command that needs one
(``train`` drawing its curves with matplotlib) passes here and fails for a user of the plain install.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import make_image_folder

#: the optional packages of every extra (convscale.utils.extras.EXTRAS), and of the ones planned (deployment runtimes,
#: shard reading); listed here so that the test also runs on a tree without that module
HIDDEN = ["huggingface_hub", "matplotlib", "nncf", "onnx", "onnxruntime", "onnxscript", "openvino", "tensorboard"]
HIDDEN += ["torchao", "webdataset", "braceexpand", "starlette", "uvicorn", "multipart", "optuna"]
TINY = ["--model", "test_resnet", "--shapes-train", "32", "--shapes-val", "16", "--shapes-res", "32"]
TINY += ["--batch-size", "16", "--workers", "0"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> dict:
    """The environment of a plain install, and a folder to work in."""
    root = tmp_path_factory.mktemp("plain")
    stubs = root / "stubs"
    for name in HIDDEN:
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not installed (hidden by the test)')\n"
        )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "CONVSCALE_CACHE": str(root / "cache")}
    env["PYTHONPATH"] = os.pathsep.join([str(stubs), *filter(None, [env.get("PYTHONPATH")])])
    env["CONVSCALE_DATASETS"] = str(root / "datasets")
    return {"env": env, "root": root}


def convscale(plain: dict, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convscale", *argv],
        env=plain["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=plain["root"],
    )


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout


def test_the_stubs_hide_the_extras(plain):
    probe = f"import importlib\nfor m in {HIDDEN!r}:\n    try:\n        importlib.import_module(m)\n        print(m)\n"
    probe += "    except ImportError:\n        pass\n"
    proc = subprocess.run([sys.executable, "-c", probe], env=plain["env"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def trained(plain) -> Path:
    """A run interrupted after its first epoch (``--max-steps``), then resumed to the end of epoch 2."""
    out = plain["root"] / "runs"
    first = convscale(plain, "train", *TINY, "--epochs", "2", "--max-steps", "2", "--out", str(out), "--name", "r")
    ok(first)
    assert (out / "r" / "checkpoints" / "last.safetensors").is_file()
    resumed = convscale(plain, "train", "--resume", str(out / "r"))
    text = ok(resumed)
    assert "done:" in text.splitlines()[-1]
    said = [line for line in resumed.stderr.splitlines() if "convscale[plot]" in line]
    assert len(said) == 1, resumed.stderr  # once, naming the extra, and the run went on
    assert (out / "r" / "metrics.csv").read_text().count("\n") == 3  # header and two epochs
    assert not (out / "r" / "curves.png").exists()
    return out / "r"


def test_train_two_epochs_and_resume(trained):
    assert trained.is_dir()


def test_eval_and_predict(plain, trained, tmp_path):
    assert "top-1" in ok(convscale(plain, "eval", str(trained)))
    from convscale.data import SyntheticShapes

    image = tmp_path / "x.png"
    SyntheticShapes("val", size=1, res=32)[0][0].save(image)
    assert str(image) in ok(convscale(plain, "predict", "--checkpoint", str(trained), str(image)))


def test_bench_signal_and_the_model_commands(plain, tmp_path):
    out = ok(convscale(plain, "bench", "test_resnet", "--res", "32", "--batch", "2", "--min-time", "0.05",
                       "--out", str(tmp_path / "b")))  # fmt: skip
    assert "test_resnet" in out and (tmp_path / "b" / "bench.csv").is_file()
    proc = convscale(plain, "bench", "test_resnet", "--runtime", "eager,onnxruntime", "--res", "32", "--batch", "2",
                     "--min-time", "0.05")  # fmt: skip
    assert "eager" in ok(proc) and proc.stderr.count("convscale[onnx]") == 1, proc.stderr
    proc = convscale(plain, "signal", "test_resnet", "--res", "32", "--batch", "2", "--out", str(tmp_path / "s"))
    ok(proc)
    assert (tmp_path / "s" / "signal.csv").is_file() and "convscale[plot]" in proc.stderr
    assert "test_resnet" in ok(convscale(plain, "list", "--all", "test_*"))
    assert "params" in ok(convscale(plain, "info", "test_resnet"))
    assert "imagenette" in ok(convscale(plain, "datasets"))


def test_cache(plain, tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=2, val_per_class=1, res=32)
    assert "images" in ok(convscale(plain, "cache", str(data), "--res", "32", "--workers", "0"))


def test_shards_are_written_and_streaming_them_names_the_extra(plain, tmp_path):
    """Writing shards needs no extra (tarfile); streaming them needs webdataset, said in one line."""
    data = make_image_folder(tmp_path / "data", per_class=2, val_per_class=1, res=32)
    assert "train: 6 samples" in ok(
        convscale(plain, "shards", str(data), "--out", str(tmp_path / "s"), "--workers", "0")
    )
    proc = convscale(plain, "train", *TINY, "--data", f"wds:{tmp_path / 's'}", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().count("\n") == 0 and "pip install 'convscale[webdataset]'" in proc.stderr, proc.stderr


@pytest.mark.parametrize("kind", ["scaling", "stages"])
def test_search_says_in_one_line_which_extra(plain, tmp_path, kind):
    """The search's engine is Optuna (the ``search`` extra): without it, one line naming the extra, nothing written."""
    argv = ["search", kind, "--res", "32", "--proxy-epochs", "1", "--out", str(tmp_path / "s")]
    proc = convscale(plain, *argv)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and "pip install 'convscale[search]'" in proc.stderr, proc.stderr
    assert not (tmp_path / "s").exists()


def test_export_to_onnx_says_in_one_line_which_extra(plain, tmp_path):
    proc = convscale(plain, "export", "test_resnet", "--out", str(tmp_path / "m.onnx"), "--res", "32")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and "pip install 'convscale[onnx]'" in proc.stderr, proc.stderr
    assert not list(tmp_path.iterdir())


def test_export_to_pt2_and_deploy_go_on_without_onnx(plain, tmp_path):
    """.pt2 needs no extra; deploy tries every runtime, and ONNX Runtime's line names the extra it lacks."""
    ok(convscale(plain, "export", "test_resnet", "--out", str(tmp_path / "m.pt2"), "--res", "32"))
    proc = convscale(plain, "deploy", "test_resnet", "--out", str(tmp_path / "d"), "--res", "32", "--batch", "2",
                     "--runtimes", "eager,onnxruntime", "--min-time", "0.05")  # fmt: skip
    text = ok(proc)
    lines = [line for line in text.splitlines() if "convscale[onnx]" in line]
    assert "chosen: eager" in text and len(lines) == 1 and lines[0].startswith("onnxruntime"), text
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 30, 30)).save(image)
    assert "x.png: " in ok(convscale(plain, "predict", str(tmp_path / "d"), str(image)))  # the deployed form
    proc = convscale(plain, "serve", str(tmp_path / "d"))
    assert proc.returncode == 2 and "pip install 'convscale[serve]'" in proc.stderr and "Traceback" not in proc.stderr

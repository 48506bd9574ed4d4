"""What ``deploy`` wrote, in use (issue 43): ``convscale.load`` of each runtime's folder gives the top-1 deploy
reported; ``predict``, ``eval`` and ``bench`` take the folder; tampered folders are refused in one line with nothing
run; ``serve`` answers concurrent clients and bad requests; ``deploy`` prints no other library's noise."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import importlib
import io
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import convscale
from conftest import make_image_folder, one_line_error
from convscale.cli import main
from convscale.deploy import deploy_model
from convscale.train import TrainConfig, fit

optimize = importlib.import_module("convscale.deploy.optimize")  # the module (the package exports its function)
_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
RUNTIMES = ["eager", "compile", "onnxruntime", "openvino", "inductor-int8", "openvino-int8"]
_NEEDS = {"onnxruntime": "onnxruntime", "openvino": "openvino", "openvino-int8": "nncf", "inductor-int8": "torchao"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deployed")
    data = make_image_folder(root / "data", per_class=8, val_per_class=4, res=32)
    cfg = TrainConfig(model="test_convnext", data=str(data), epochs=2, batch_size=8, train_res=32, workers=0,
                      out=str(root / "runs"), name="r")  # fmt: skip
    return fit(cfg, log=lambda *_: None).run_dir


_DEPLOYED: dict[str, Path] = {}


def _favouring(runtime: str, time_runners, runners, x, device, **timing):
    """The real timings, with ``runtime``'s made the fastest (a test of loading each form, not of choosing)."""
    timings = time_runners(runners, x, device, **timing)
    fastest = min(t.median for t in timings.values())
    timings[runtime] = dataclasses.replace(timings[runtime], median=fastest / 2)
    return timings


def deployed(run: Path, runtime: str) -> Path:
    """``run`` deployed with only ``runtime`` (so that it is the choice), once per module."""
    if runtime in _NEEDS:
        pytest.importorskip(_NEEDS[runtime], reason=f"{runtime} needs its extra")
    if runtime not in _DEPLOYED:
        out = run.parent.parent / f"dep-{runtime}"
        with pytest.MonkeyPatch.context() as m:  # eager is always measured beside: let the runtime asked for win
            m.setattr(optimize, "time_runners", functools.partial(_favouring, runtime, optimize.time_runners))
            deploy_model(str(run), str(out), runtimes=[runtime], batch=4, min_time=0.05, max_top1_drop=100.0)
        _DEPLOYED[runtime] = out
    return _DEPLOYED[runtime]


def test_every_runtime_has_a_way_to_open_its_deployed_form():
    from convscale.deployed.forms import FORMS
    from convscale.deployed.spec import RUNTIMES as ALL

    assert sorted(FORMS) == sorted(ALL)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_load_gives_the_top1_deploy_reported(run, runtime):
    folder = deployed(run, runtime)
    report = json.loads((folder / "deploy.json").read_text())
    chosen = next(c for c in report["candidates"] if c["runtime"] == runtime)
    assert report["choice"] == runtime
    p = convscale.load(folder)
    assert (p.runtime, p.batch) == (runtime, 4) and p.precision == report["precision"]
    assert p.machine["cpu"] and p.measured_on == report["machine"]
    r = convscale.evaluate(folder, workers=0)  # the deployed form itself, on the data deploy scored it on
    assert r.count == 12 and r.top1 == pytest.approx(chosen["top1"], abs=1e-6)
    images = sorted(Path(report["val"], "val").rglob("*.png"))[:5]
    top = p(images, topk=2)
    assert len(top) == 5 and all(len(t) == 2 and t[0][1] >= t[1][1] for t in top)
    assert p(images[0]) == p([Image.open(images[0])])  # a path or a PIL image alike
    pixels = np.stack([np.asarray(Image.open(i).convert("RGB")) for i in images])  # NHWC uint8, and NCHW
    assert p(pixels) == p(images) == p(torch.from_numpy(pixels).permute(0, 3, 1, 2))


def test_predict_eval_and_bench_take_a_deployed_folder(run, capsys):
    folder = deployed(run, "eager")
    image = next(Path(json.loads((folder / "deploy.json").read_text())["val"], "val").rglob("*.png"))
    assert main(["predict", str(folder), str(image)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{image}: ") and "%" in out
    assert main(["eval", str(folder), "--workers", "0"]) == 0
    assert "(deployed: eager fp32" in capsys.readouterr().out
    assert main(["bench", str(folder), "--min-time", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "eager (fp32), batch 4 at 32 px" in out and "deploy measured" in out


def test_a_folder_deployed_on_another_cpu_loads_and_says_so_in_one_line(run, tmp_path, capsys):
    folder = tmp_path / "moved"
    shutil.copytree(deployed(run, "eager"), folder)
    report = json.loads((folder / "deploy.json").read_text())
    report["machine"] = {"cpu": "Intel Xeon", "isa": ["avx2", "avx512f", "amx_bf16", "amx_int8"], "threads": 2}
    (folder / "deploy.json").write_text(json.dumps(report))
    p = convscale.load(folder)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chosen by measurement on Intel Xeon (avx2 avx512f amx_bf16 amx_int8)" in err
    assert p.measured_on["cpu"] == "Intel Xeon" and p.machine["cpu"] != "Intel Xeon" and p.elsewhere


def test_another_size_than_the_deployed_one_is_refused(run, capsys):
    folder = deployed(run, "eager")
    assert main(["eval", str(folder), "--workers", "0", "--res", "48"]) == 2
    one_line_error(capsys, "was deployed at 32 px")


# --- untrusted folders -----------------------------------------------------------------------------------------------


class _Touch:
    """A pickle payload: unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _tamper(run: Path, tmp_path: Path, runtime: str, edit) -> tuple[Path, Path]:
    folder = tmp_path / "tampered"
    shutil.copytree(deployed(run, runtime), folder)
    marker = tmp_path / "ran"
    edit(folder, marker)
    return folder, marker


def _edit_json(edit):
    def apply(folder: Path, marker: Path) -> None:
        report = json.loads((folder / "deploy.json").read_text())
        edit(report)
        (folder / "deploy.json").write_text(json.dumps(report))

    return apply


def _pt2_with(member_suffix: str, payload: bytes):
    """The archive with the member ending ``member_suffix`` replaced by ``payload``."""

    def apply(folder: Path, marker: Path) -> None:
        path = folder / "model.pt2"
        members = {}
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                members[info.filename] = z.read(info.filename)
        name = next(n for n in members if n.endswith(member_suffix))
        members[name] = payload if payload else pickle.dumps(_Touch(marker))
        with zipfile.ZipFile(path, "w") as z:
            for n, data in members.items():
                z.writestr(n, data)

    return apply


def _pickled_weight(folder: Path, marker: Path) -> None:
    path = folder / "model.pt2"
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    config_name = next(n for n in members if n.endswith("model_weights_config.json"))
    config = json.loads(members[config_name])
    first = next(iter(config["config"].values()))
    first["use_pickle"] = True
    members[config_name] = json.dumps(config).encode()
    weight = next(n for n in members if n.endswith(f"data/weights/{first['path_name']}"))
    members[weight] = pickle.dumps(_Touch(marker))
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


def _outside_link(folder: Path, marker: Path) -> None:
    outside = folder.parent / "elsewhere.onnx"
    (folder / "model.onnx").rename(outside)
    (folder / "model.onnx").symlink_to(outside)


def _external_data(folder: Path, marker: Path) -> None:
    import onnx

    model = onnx.load(str(folder / "model.onnx"))
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="data.bin", size_threshold=0)  # fmt: skip
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:  # onnx refuses to write "..": the file is edited as an attacker would
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../outside.bin"
    (folder / "model.onnx").write_bytes(model.SerializeToString())


def _truncated_bin(folder: Path, marker: Path) -> None:
    data = (folder / "model.bin").read_bytes()
    (folder / "model.bin").write_bytes(data[: len(data) // 3])


TAMPERED = {
    "a file outside the folder": ("eager", _edit_json(lambda r: r.update(files=["../../etc/passwd"])), "no .."),
    "an absolute path": ("eager", _edit_json(lambda r: r.update(files=["/etc/passwd"])), "no absolute path"),
    "a link leaving the folder": ("onnxruntime", _outside_link, "leads outside"),
    "ONNX external data outside": ("onnxruntime", _external_data, "'../outside.bin' is not a file name inside"),
    "a pickle in the sample inputs": ("eager", _pt2_with("sample_inputs/model.pt", b""), "does not load as plain"),
    "a pickled weight": ("eager", _pickled_weight, "as a pickled object"),
    "a truncated model.bin": ("openvino", _truncated_bin, "OpenVINO cannot read it"),
    "no spec": ("eager", _edit_json(lambda r: r.pop("spec")), "no complete 'spec'"),
    "an unknown runtime": ("eager", _edit_json(lambda r: r.update(choice="tensorrt")), "unknown runtime 'tensorrt'"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_folder_is_refused_in_one_line_and_runs_nothing(run, tmp_path, capsys, case):
    runtime, edit, said = TAMPERED[case]
    folder, marker = _tamper(run, tmp_path, runtime, edit)
    image = next(Path(json.loads((folder / "deploy.json").read_text())["val"], "val").rglob("*.png"))
    assert main(["predict", str(folder), str(image)]) == 2
    one_line_error(capsys, said)
    assert not marker.exists()


def test_torch_export_load_itself_runs_the_planted_pickle(run, tmp_path):
    """Why the check exists: PyTorch's own loader runs the payload that convscale refuses."""
    folder, marker = _tamper(run, tmp_path, "eager", _pt2_with("sample_inputs/model.pt", b""))
    code = f"import torch\ntry:\n    torch.export.load({str(folder / 'model.pt2')!r})\nexcept Exception:\n    pass\n"
    subprocess.run([sys.executable, "-c", code], env=_ENV, capture_output=True, timeout=120)
    assert marker.exists()


# --- serving ----------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes, kind: str | None = "image/png", timeout: float = 30) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"content-type": kind} if kind else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_serve_answers_concurrent_clients_and_refuses_bad_requests(run, tmp_path):
    pytest.importorskip("starlette")
    folder = deployed(run, "eager")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "convscale.cli", "serve", str(folder), "--port", str(port)],
                            env=_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        images = [p.read_bytes() for p in sorted(Path(run.parent.parent / "data" / "val").rglob("*.png"))]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: _post(f"{url}/predict", images[i % len(images)]), range(200)))
        assert [s for s, _ in answers].count(200) == 200
        assert all(len(a["top"]) == 3 and a["top"][0]["label"] in ("circle", "star", "triangle") for _, a in answers)
        huge = _png(Image.new("L", (7100, 7100)))  # 50 megapixels, a few KB of PNG
        bad = [(b"not an image", "image/png"), (huge, "image/png"), (b"", "image/png"), (images[0], "text/plain"),
               (images[0][: len(images[0]) // 2], "image/png")] * 2  # fmt: skip
        for body, kind in bad:
            status, answer = _post(f"{url}/predict", body, kind)
            assert 400 <= status < 500 and answer["error"], (status, answer)
        health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=5).read())
        assert health["status"] == "ok" and health["images"] == 200 and health["batches"] < 200  # batched
        meta = json.loads(urllib.request.urlopen(f"{url}/metadata", timeout=5).read())
        assert meta["runtime"] == "eager" and meta["classes"] == ["circle", "star", "triangle"]
        page = urllib.request.urlopen(url, timeout=5).read().decode()
        assert '<input id="file" type="file"' in page and 'fetch("predict?topk=5"' in page
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode in (0, 143)


def test_serve_refuses_what_is_not_a_deployed_folder(tmp_path, capsys):
    assert main(["serve", str(tmp_path)]) == 2
    one_line_error(capsys, "is not a deployed folder")


# --- quiet ------------------------------------------------------------------------------------------------------------


def test_deploy_prints_no_other_librarys_noise(run, tmp_path):
    pytest.importorskip("torchao")
    args = ["deploy", str(run), "--out", str(tmp_path / "dep"), "--runtimes", "eager,inductor-int8", "--batch", "4",
            "--min-time", "0.05"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "convscale.cli", *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    said = done.stdout + done.stderr
    for noise in ("Failed to load", "_pytree", "UserWarning", "torchao", "Warning:"):
        assert noise not in said, said[-3000:]
    assert "chosen: " in done.stdout

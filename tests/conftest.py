import copy
import csv
import json
import os
import sys
from pathlib import Path

import pytest
import torch

import convscale

DATA = Path(__file__).parent / "data"
PARITY = Path(__file__).parent / "parity"
sys.path.insert(0, str(PARITY))  # fill.py: the fixtures' deterministic weights

from fill import decode_stored, fill_state_dict, parity_input  # noqa: E402


def parity_fixture(name: str):
    """(reference model name, its weights, the input, the reference logits as float64) of a parity fixture."""
    fx = json.loads((PARITY / f"{name}.json").read_text())
    weights = fill_state_dict(dict(fx["state_dict"]), decode_stored(fx))
    return fx["model"], weights, parity_input(*fx["input"]), torch.tensor(fx["logits"], dtype=torch.float64)


def reference_rows() -> dict[str, dict[str, str]]:
    """shared/reference/reference_models.csv (copied): params and GMACs counted on timm / torchvision."""
    with open(DATA / "reference_models.csv") as f:
        return {row["model"]: row for row in csv.DictReader(f)}


def timm_layouts() -> dict[str, dict]:
    return json.loads((DATA / "timm_layouts.json").read_text())["models"]


ALL_MODELS = convscale.list_models()
TINY_MODELS = [n for n in ALL_MODELS if n.startswith("test_")]
BIG_PARAMS = 30e6  # above this, tests with real arithmetic on a full-size model are ``slow``


_META: dict[str, torch.nn.Module] = {}


def meta_model(name: str) -> torch.nn.Module:
    """A copy of model ``name`` (default settings) on the meta device. Built once per session and copied: building
    NFNet-F7 on the meta device takes about a second (PyTorch's initializers run there too), copying it a tenth."""
    if name not in _META:
        with torch.device("meta"):
            _META[name] = convscale.create_model(name)
    return copy.deepcopy(_META[name])


def is_big(name: str) -> bool:
    """Whether model ``name`` has more than BIG_PARAMS parameters (from the shipped count table: instant)."""
    from convscale.factory import count_model

    return count_model(name, ())[0] > BIG_PARAMS


def make_image_folder(root: Path, per_class: int = 12, val_per_class: int = 4, res: int = 64) -> Path:
    """An ImageFolder (``train/`` and ``val/``) of synthetic shapes in three classes, as PNGs of ``res`` px."""
    from convscale.data import SyntheticShapes

    shapes = SyntheticShapes("train", size=60 * per_class, res=res)
    labels = {0: "circle", 3: "triangle", 7: "star"}
    counts = dict.fromkeys(labels, 0)
    for i in range(len(shapes)):
        img, label = shapes[i]
        if label not in labels or counts[label] >= per_class + val_per_class:
            continue
        split = "train" if counts[label] < per_class else "val"
        (root / split / labels[label]).mkdir(parents=True, exist_ok=True)
        img.save(root / split / labels[label] / f"{i}.png")
        counts[label] += 1
    return root


def one_line_error(capsys, *fragments: str) -> str:
    """The command's stderr: one line, no traceback, holding each of ``fragments``."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err[-2000:]
    for fragment in fragments:
        assert fragment in err, err
    return err


if os.environ.get("PYTEST_XDIST_WORKER"):  # one of several test processes: one thread each, no oversubscription
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class FileServer:
    """A local HTTP server on 127.0.0.1 serving ``files`` (path -> bytes) with ``Range`` support; ``cut`` (path ->
    bytes) makes the next response for a path stop after that many bytes, as a dropped connection does. ``log``
    lists (path, Range header) of every request."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.log: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                """Quiet: no line per request on stderr."""

            def do_GET(self) -> None:
                server.log.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                stop = len(body)
                if self.path in server.cut:
                    stop = start + server.cut.pop(self.path)
                self.wfile.write(body[start:stop])
                if stop < len(body):
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-file

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.close()


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_hub_file(cache: Path, repo: str, filename: str, write) -> Path:
    """A file in the huggingface_hub cache layout: refs/main names a commit, snapshots/<commit>/<file>."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    path = folder / "snapshots" / COMMIT / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path)
    return path


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline: nothing may reach the network."""
    from huggingface_hub import constants

    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture(autouse=True)
def _fp32_when_auto(monkeypatch):
    """``--amp auto`` (the default) times fp32 against bf16 before a run on a CPU with native bf16. In this process
    the probe answers that fp32 is faster, so that the suite's runs train in fp32 on every machine and runs compared
    bit for bit never depend on a timing; ``tests/test_precision.py`` runs the real probe and the rule."""
    from convscale.train import precision

    monkeypatch.setattr(precision, "probe_speeds", lambda *a, **k: {p: 2.0 if p == "none" else 1.0 for p in a[2]})

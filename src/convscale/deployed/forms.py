"""Each deployed form opened in its runtime: one row per runtime (the file it reads, the extra that brings the runtime,
how it opens), each opener returning ``run(x) -> logits`` on a float32 NCHW batch of the deployed batch size.

Which formats can carry code, and how each is opened:

- ``model.pt2`` / ``model.int8.pt2`` (``torch.export``): a zip of JSON, raw tensor bytes and pickles. PyTorch's
  loader unpickles with ``weights_only=False``, so a planted pickle runs. It is opened only after :func:`check_pt2`:
  no pickled weight, constant or custom object may be declared, no legacy pickle file may be present, and the sample
  inputs (the one pickle every archive has) must load with ``torch.load(weights_only=True)`` — PyTorch's restricted
  unpickler, which refuses any import but tensors and plain containers, and runs nothing.
- ``model.onnx`` / ``model.int8.onnx``: protobuf, no code; its external data files must stay inside the folder.
- ``model.xml`` + ``model.bin`` (OpenVINO IR): XML and raw weights, no code (no extension library is loaded).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from ..utils.extras import require
from ..utils.paths import stays_inside
from .folder import DeployedFolder, inside

__all__ = ["FORMS", "Form", "check_onnx_data", "check_pt2", "frozen", "open_form", "ort_session", "ov_compiled", "runs"]

Run = Callable[[torch.Tensor], torch.Tensor]
_CPU = torch.device("cpu")


@dataclass(frozen=True)
class Form:
    """How one runtime's deployed form is opened: its file, the module its runtime needs, and the opener."""

    file: str
    module: str | None  # what must import (its extra is named when it does not); None: PyTorch alone
    open: Callable[[DeployedFolder, Path, bool], Run]  # (folder, file, bf16) -> run


def _pt2_program(path: Path):
    check_pt2(path)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the archive's own notes ("no complete tensor found", ...)
        return torch.export.load(str(path)).module()


def _eager(folder: DeployedFolder, path: Path, bf16: bool) -> Run:
    return runs(_pt2_program(path), bf16)


def _compiled(folder: DeployedFolder, path: Path, bf16: bool) -> Run:
    return runs(torch.compile(_pt2_program(path), options={"freezing": True}), bf16)


def _inductor_int8(folder: DeployedFolder, path: Path, bf16: bool) -> Run:
    return frozen(runs(torch.compile(_pt2_program(path)), bf16))


def runs(model: Callable, bf16: bool, device: torch.device = _CPU, *, channels_last: bool = False) -> Run:
    """``model`` as a runner's function: inference mode, bf16 autocast if asked, float32 logits out (``deploy``
    times its runtimes through this, and a deployed folder runs through it)."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast:
            return model(x.contiguous(memory_format=layout)).float()

    return run


def frozen(run: Run) -> Run:
    """``run`` with inductor's weight freezing on: the int8 lowering reads the global setting, not compile's
    options (as deploy measured it)."""
    import torch._inductor.config as inductor

    def call(x: torch.Tensor) -> torch.Tensor:
        with inductor.patch(freezing=True):
            return run(x)

    return call


def _onnx(folder: DeployedFolder, path: Path, bf16: bool) -> Run:
    check_onnx_data(folder, path)
    session = ort_session(require("onnxruntime", "a deployed ONNX model"), path)
    key = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {key: x.float().contiguous().cpu().numpy()})[0])

    return run


def ort_session(ort, path: Path, threads: int | None = None):
    """An ONNX Runtime session on the CPU with this process's threads and no spinning."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads() or os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ONNX Runtime's threads spin after a run, waiting for the next: in an interleaved comparison that spinning
    # steals the cores from whichever contender runs next (measured: our compiled RepVGG-A0 at 0.75x timm's in the
    # loop, 1.00x alone). Off, the cores are free as soon as a run ends.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _openvino(folder: DeployedFolder, path: Path, bf16: bool) -> Run:
    ov = require("openvino", "a deployed OpenVINO model")
    weights = folder.file(path.with_suffix(".bin").name)
    try:
        return ov_compiled(ov, ov.Core().read_model(str(path), str(weights)))[1]
    except RuntimeError as e:
        raise ValueError(f"{path}: OpenVINO cannot read it ({str(e).strip().splitlines()[0][:200]})") from None


def ov_compiled(ov, model) -> tuple[Any, Run]:
    """An OpenVINO model compiled for this CPU (latency hint, this process's threads) and its run function (the
    compiled model is returned too: it must outlive the function)."""
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    compiled = ov.Core().compile_model(model, "CPU", config)
    request = compiled.create_infer_request()

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(request.infer([x.float().contiguous().numpy()])[0].copy())

    run.keep = request  # type: ignore[attr-defined]
    return compiled, run


FORMS: dict[str, Form] = {
    "eager": Form("model.pt2", None, _eager),
    "eager-bf16": Form("model.pt2", None, _eager),
    "compile": Form("model.pt2", None, _compiled),
    "compile-bf16": Form("model.pt2", None, _compiled),
    "inductor-int8": Form("model.int8.pt2", None, _inductor_int8),
    "inductor-int8-bf16": Form("model.int8.pt2", None, _inductor_int8),
    "onnxruntime": Form("model.onnx", "onnxruntime", _onnx),
    "onnxruntime-int8": Form("model.int8.onnx", "onnxruntime", _onnx),
    "openvino": Form("model.xml", "openvino", _openvino),
    "openvino-int8": Form("model.xml", "openvino", _openvino),
}


def open_form(folder: DeployedFolder) -> Run:
    """The deployed form of ``folder`` opened in its runtime (its file checked first)."""
    form = FORMS[folder.runtime]
    if form.file not in folder.files:
        raise ValueError(f"{folder.path}/deploy.json: a {folder.runtime} deploy holds {form.file}, not listed there")
    path = folder.file(form.file)
    if form.module is not None:
        require(form.module, f"the deployed {folder.runtime} model")
    try:
        return form.open(folder, path, folder.runtime.endswith("-bf16"))
    except (zipfile.BadZipFile, KeyError, RuntimeError, EOFError) as e:
        raise ValueError(f"{path}: cannot be opened as a {folder.runtime} model ({type(e).__name__}: "
                         f"{str(e).strip()[:200]})") from None  # fmt: skip


def check_pt2(path: Path) -> None:
    """Refuse a ``.pt2`` archive whose opening could run code (see the module's notes); a ValueError naming the
    member otherwise."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"{path}: not a .pt2 archive ({e})") from None
    with archive:
        names = archive.namelist()
        if not any("/models/" in f"/{n}" and n.endswith(".json") for n in names):
            raise ValueError(f"{path}: not a torch.export archive of this format (no models/*.json); refused")
        for name in names:
            parts = PurePosixPath(name).parts
            if not stays_inside(name):
                raise ValueError(f"{path}: member {name[:100]!r} has a path outside the archive")
            inner = "/".join(parts[1:])
            if inner.startswith("data/sample_inputs/"):
                _weights_only(archive.read(name), path, name)
            elif inner.endswith((".pt", ".pkl", ".pickle")):
                raise ValueError(f"{path}: member {name!r} is a pickle convscale does not open (it could run code)")
            elif inner.endswith(("_weights_config.json", "_constants_config.json")):
                _no_pickled_payloads(archive.read(name), path, name)


def _weights_only(data: bytes, path: Path, name: str) -> None:
    try:
        torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as e:  # the restricted unpickler refused an import (or the bytes are not a tensor file)
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path}: member {name!r} is a pickle that does not load as plain tensors ({first}); refused, nothing run"
        ) from None


_RAW_PREFIXES = ("weight_", "tensor_")  # torch.export's names of raw tensor payloads (custom objects: "custom_obj_")


def _no_pickled_payloads(data: bytes, path: Path, name: str) -> None:
    try:
        config = json.loads(data).get("config", {})
    except (ValueError, AttributeError):
        raise ValueError(f"{path}: member {name!r} is not the JSON torch.export writes") from None
    for fqn, entry in config.items() if isinstance(config, dict) else ():
        raw = isinstance(entry, dict) and not entry.get("use_pickle")
        if not raw or not str(entry.get("path_name", "")).startswith(_RAW_PREFIXES):
            raise ValueError(
                f"{path}: {name} declares {str(fqn)[:80]!r} as a pickled object; convscale opens only raw tensors "
                "(a pickle could run code)"
            )


def check_onnx_data(folder: DeployedFolder, path: Path) -> None:
    """Refuse an ONNX model whose external data lies outside its folder (ONNX Runtime would read it)."""
    onnx = require("onnx", "a deployed ONNX model")
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"{path}: not an ONNX model ({type(e).__name__}: {str(e)[:200]})") from None
    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            inside(folder.path, location, path)

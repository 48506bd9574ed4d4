"""The forms a trained model can run in on this machine, side by side: PyTorch eager (the fused form, channels_last),
eager in bf16, ``torch.compile`` (inductor with weight freezing), ONNX Runtime (the exported graph, its thread
count set to this machine's), OpenVINO (``openvino.py``), and int8 by each of them — ``inductor-int8`` (PT2E, the
rest in fp32 or, ``-bf16``, in bf16), ``onnxruntime-int8`` (QDQ) and ``openvino-int8`` (NNCF) — calibrated on the
images given (``quantize.py``). Each :class:`Runner` is a callable on a float32 NCHW batch; its outputs are checked
against the fused model in fp32 (:func:`max_rel_error`), and :func:`time_runners` times them interleaved in one
process (``timing.measure``). ``deploy``, ``convscale bench --runtime`` and the benchmarks read
:data:`TABLE`, one record per runtime; a new runtime is one record and its builder.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from ..deployed.forms import frozen, ort_session, runs
from ..deployed.spec import RUNTIMES
from ..utils.timing import bf16_ok
from .quantize import QuantSettings
from .runner import Runner

__all__ = [
    "INT8",
    "RUNTIMES",
    "TABLE",
    "Runner",
    "Runtime",
    "build_runner",
    "check_onnx",
    "check_runtimes",
    "max_rel_error",
    "onnx_runner",
    "time_runners",
]

Build = Callable[..., Runner]  # (fused, example, calibration or None, settings) -> Runner


@dataclass(frozen=True)
class Runtime:
    """One runtime: its name, the precision of its multiply-adds (``auto``: OpenVINO's choice, bf16 where the CPU has
    it natively), whether it needs calibration images (int8), the convscale extra that brings it (None: PyTorch
    alone), whether it runs on a GPU as well as the CPU, and how its runner is built from the fused model, an
    example batch, the calibration batches and the int8 settings."""

    name: str
    precision: str
    calibrated: bool
    extra: str | None
    any_device: bool
    build: Build

    @property
    def needs_bf16(self) -> bool:
        """Whether it runs only where bf16 is native (``utils.timing.bf16_ok``)."""
        return self.precision.endswith("bf16")


def _pytorch(compiled: bool, bf16: bool) -> Build:
    """PyTorch on the fused model, channels_last, eager or ``torch.compile`` with weight freezing, fp32 or bf16."""

    def build(fused: nn.Module, example: torch.Tensor, calibration, settings: QuantSettings) -> Runner:
        model = copy.deepcopy(fused).to(memory_format=torch.channels_last)
        if compiled:
            model = torch.compile(model, options={"freezing": True})  # weights constant-folded into the graph
        name = ("compile" if compiled else "eager") + ("-bf16" if bf16 else "")
        run = runs(model, bf16, example.device, channels_last=True)
        return Runner(name, run, precision="bf16" if bf16 else "fp32")

    return build


def _openvino(fused: nn.Module, example: torch.Tensor, calibration, settings: QuantSettings) -> Runner:
    from .openvino import openvino_runner

    return openvino_runner(fused, example, calibration, settings)


def _inductor_int8(fused: nn.Module, example: torch.Tensor, calibration, settings: QuantSettings, *, bf16: bool):
    """PT2E int8, compiled with weight freezing (oneDNN's int8 convolutions and linears); with ``bf16`` the
    operations left in floating point run in bf16."""
    from .quantize import quantize_pt2e

    graph = quantize_pt2e(fused, example, calibration, settings)
    run = frozen(runs(torch.compile(graph), bf16, example.device))

    def save(folder: Path) -> list[str]:
        with torch.no_grad():  # the quantized graph, to be compiled where it runs (torch.export.load + compile)
            torch.export.save(torch.export.export(graph, (example.float(),)), str(folder / "model.int8.pt2"))
        return ["model.int8.pt2"]

    name = "inductor-int8-bf16" if bf16 else "inductor-int8"
    return Runner(name, run, [graph], "int8+bf16" if bf16 else "int8", settings.describe(fused), save)


def _onnxruntime(fused: nn.Module, example: torch.Tensor, calibration, settings: QuantSettings) -> Runner:
    """The fused model exported to ONNX and run in ONNX Runtime; int8 (QDQ) when ``calibration`` is given."""
    import shutil

    from .exporter import ExportSpec, export
    from .quantize import quantize_onnx

    folder = tempfile.TemporaryDirectory(prefix="convscale-ort-")
    spec = ExportSpec("model", "runtime", example.shape[-1], example.shape[0], (0.0,) * 3, (1.0,) * 3, 1.0,
                      "center", "bicubic", False, False, 0)  # fmt: skip
    mine = copy.deepcopy(fused).float().to(memory_format=torch.contiguous_format)
    path = export(mine, Path(folder.name) / "m.onnx", spec)
    name, file = "onnxruntime", "model.onnx"
    if calibration is not None:
        path = quantize_onnx(path, Path(folder.name) / "m.int8.onnx", calibration, settings)
        name, file = "onnxruntime-int8", "model.int8.onnx"
    runner = onnx_runner(path, name)
    runner.keep.append(folder)
    if calibration is not None:

        def save(out: Path) -> list[str]:
            shutil.copyfile(path, out / file)
            return [file]

        runner.precision, runner.settings = "int8", settings.describe(fused, keeps=False) + " (QDQ)"
        runner.save = save
    return runner


def onnx_runner(path: str | Path, name: str = "onnxruntime") -> Runner:
    """An ONNX file in an ONNX Runtime session on the CPU (this machine's threads, no spinning)."""
    from .exporter import require

    session = ort_session(require("onnxruntime"), Path(path))
    key = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {key: x.float().contiguous().cpu().numpy()})[0])

    return Runner(name, run, keep=[session])


#: every runtime, one record each (``deployed.spec.RUNTIMES`` names them, in this order, for the deployed folder)
TABLE: tuple[Runtime, ...] = (
    Runtime("eager", "fp32", False, None, True, _pytorch(compiled=False, bf16=False)),
    Runtime("eager-bf16", "bf16", False, None, True, _pytorch(compiled=False, bf16=True)),
    Runtime("compile", "fp32", False, None, True, _pytorch(compiled=True, bf16=False)),
    Runtime("compile-bf16", "bf16", False, None, True, _pytorch(compiled=True, bf16=True)),
    Runtime("onnxruntime", "fp32", False, "onnx", False, _onnxruntime),
    Runtime("openvino", "auto", False, "openvino", False, _openvino),
    Runtime("inductor-int8", "int8", True, "int8", False, partial(_inductor_int8, bf16=False)),
    Runtime("inductor-int8-bf16", "int8+bf16", True, "int8", False, partial(_inductor_int8, bf16=True)),
    Runtime("onnxruntime-int8", "int8", True, "onnx", False, _onnxruntime),
    Runtime("openvino-int8", "int8+auto", True, "openvino", False, _openvino),
)
BY_NAME = {r.name: r for r in TABLE}
#: the runtimes that need calibration images
INT8 = tuple(r.name for r in TABLE if r.calibrated)


def build_runner(
    name: str,
    fused: nn.Module,
    example: torch.Tensor,
    device: torch.device,
    *,
    calibration: Sequence[torch.Tensor] | None = None,
    settings: QuantSettings | None = None,
) -> Runner | None:
    """The runner ``name`` (a record of :data:`TABLE`) for ``fused`` (an eval-mode model, already in its inference
    form, on ``device``); None where this machine cannot run it (bf16 without hardware support, a CPU runtime on
    another device). ``example``: a batch of the size that will be run. The int8 runtimes need ``calibration``
    (batches of that size) and take ``settings``. Each runner works on its own copy of ``fused`` (``Module.to``
    converts in place: one runner's memory format must not become another's)."""
    check_runtimes([name])
    runtime = BY_NAME[name]
    if (runtime.needs_bf16 and not bf16_ok(device)) or (device.type != "cpu" and not runtime.any_device):
        return None
    if runtime.calibrated and not calibration:
        raise ValueError("needs calibration images (--calibrate DIR, or a run's own training data)")
    return runtime.build(fused, example, calibration if runtime.calibrated else None, settings or QuantSettings())


def check_onnx(path: str | Path, model: nn.Module, spec, batch: int = 2) -> float:
    """Max |ONNX Runtime − PyTorch eager fp32| / max |eager| on a random batch of the exported graph's own input
    (``spec``: its :class:`~convscale.deploy.exporter.ExportSpec`); with a dynamic size, the worst of the example
    size and an odd size near 3/4 of it, where 'same' pads are uneven."""
    from .exporter import Normalized

    n = batch if spec.batch == "dynamic" else spec.batch
    sizes = [(spec.res, spec.res)] + ([(spec.res * 3 // 4 | 1, spec.res * 3 // 4 + 6)] if spec.dynamic_size else [])
    reference = Normalized(model.eval(), spec.mean, spec.std) if spec.normalize_in_graph else model.eval()
    run = onnx_runner(path).fn
    errors = []
    for h, w in sizes:
        x = torch.rand(n, 3, h, w)
        with torch.no_grad():
            errors.append(max_rel_error(run(x), reference(x).float()))
    return max(errors)


def check_runtimes(names: Sequence[str]) -> None:
    """Every name a runtime of :data:`TABLE`, else one ValueError naming the first unknown one."""
    unknown = [r for r in names if r not in RUNTIMES]
    if unknown:
        raise ValueError(f"unknown runtime {unknown[0]!r}; expected some of {', '.join(RUNTIMES)}")


def max_rel_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got − want| / max |want|, in float64."""
    return float((got.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1e-12))


def time_runners(runners: dict[str, Runner], x: torch.Tensor, device: torch.device, **timing):
    """Each runner's :class:`~convscale.utils.timing.Timing` on ``x``, measured interleaved."""
    from ..utils.timing import measure

    return measure({k: (lambda r=r: r.fn(x)) for k, r in runners.items()}, device, **timing)

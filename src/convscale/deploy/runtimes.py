"""The forms a trained model can run in on this machine, side by side: PyTorch eager (the fused form, channels_last),
eager in bf16, ``torch.compile`` (inductor with weight freezing), and ONNX Runtime (the exported graph, its thread
count set to this machine's). Each :class:`Runner` is a callable on a float32 NCHW batch; its outputs are checked
against the fused model in fp32 (:func:`max_rel_error`), and :func:`time_runners` times them interleaved in one
process (``timing.measure``). ``deploy.optimize`` and ``convscale bench --runtime`` are built on these.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..utils.timing import bf16_ok

__all__ = [
    "RUNTIMES",
    "Runner",
    "build_runner",
    "check_onnx",
    "check_runtimes",
    "max_rel_error",
    "onnx_runner",
    "time_runners",
]

RUNTIMES = ("eager", "eager-bf16", "compile", "compile-bf16", "onnxruntime")


@dataclass
class Runner:
    """One runtime's way to run the model: ``fn(x) -> logits`` (float32 out), and what it keeps alive."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    keep: list = field(default_factory=list)  # files and sessions that must outlive fn


def build_runner(name: str, fused: nn.Module, example: torch.Tensor, device: torch.device) -> Runner | None:
    """The runner ``name`` (one of :data:`RUNTIMES`) for ``fused`` (an eval-mode model, already in its inference
    form, on ``device``); None where this machine cannot run it (bf16 without hardware support, ONNX Runtime on a
    device it is not built for). ``example``: a batch of the size that will be run. Each runner works on its own copy
    of ``fused`` (``Module.to`` converts in place: one runner's memory format must not become another's)."""
    check_runtimes([name])
    bf16 = name.endswith("-bf16")
    if bf16 and not bf16_ok(device):
        return None
    if name == "onnxruntime":
        return None if device.type != "cpu" else _onnxruntime(fused, example)
    model = copy.deepcopy(fused).to(memory_format=torch.channels_last)
    if name.startswith("compile"):
        model = torch.compile(model, options={"freezing": True})  # weights constant-folded into the graph
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast:
            return model(x.contiguous(memory_format=torch.channels_last)).float()

    return Runner(name, run)


def _onnxruntime(fused: nn.Module, example: torch.Tensor) -> Runner:
    from .exporter import ExportSpec, export

    folder = tempfile.TemporaryDirectory(prefix="convscale-ort-")
    spec = ExportSpec("model", "runtime", example.shape[-1], example.shape[0], (0.0,) * 3, (1.0,) * 3, 1.0,
                      "center", "bicubic", False, False, 0)  # fmt: skip
    mine = copy.deepcopy(fused).float().to(memory_format=torch.contiguous_format)
    runner = onnx_runner(export(mine, Path(folder.name) / "m.onnx", spec))
    runner.keep.append(folder)
    return runner


def onnx_runner(path: str | Path, name: str = "onnxruntime") -> Runner:
    """An ONNX file in an ONNX Runtime session on the CPU (this machine's threads, no spinning)."""
    from .exporter import require

    session = _session(require("onnxruntime"), Path(path))
    key = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {key: x.float().contiguous().cpu().numpy()})[0])

    return Runner(name, run, keep=[session])


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
    """Every name a runtime of :data:`RUNTIMES`, else one ValueError naming the first unknown one."""
    unknown = [r for r in names if r not in RUNTIMES]
    if unknown:
        raise ValueError(f"unknown runtime {unknown[0]!r}; expected some of {', '.join(RUNTIMES)}")


def _session(ort, path: Path, threads: int | None = None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads() or os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ONNX Runtime's threads spin after a run, waiting for the next: in an interleaved comparison that spinning
    # steals the cores from whichever contender runs next (measured: our compiled RepVGG-A0 at 0.75x timm's in the
    # loop, 1.00x alone). Off, the cores are free as soon as a run ends.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_rel_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got − want| / max |want|, in float64."""
    return float((got.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1e-12))


def time_runners(runners: dict[str, Runner], x: torch.Tensor, device: torch.device, **timing):
    """Each runner's :class:`~convscale.bench.timing.Timing` on ``x``, measured interleaved."""
    from ..utils.timing import measure

    return measure({k: (lambda r=r: r.fn(x)) for k, r in runners.items()}, device, **timing)

"""int8 post-training static quantization by three tools, calibrated on the user's images, with one set of choices
(:class:`QuantSettings`) recorded beside the result:

- ONNX Runtime's own tools (:func:`quantize_onnx`): QDQ format, int8 weights, uint8 activations, min-max calibration;
- PT2E (:func:`quantize_pt2e`): ``torch.export`` → ``prepare_pt2e`` with torchao's ``X86InductorQuantizer`` →
  calibration → ``convert_pt2e``; ``torch.compile`` with freezing then lowers it to oneDNN's int8 kernels;
- NNCF (:func:`quantize_openvino`): post-training quantization of an OpenVINO model.

A module named in ``keep`` (or, with ``keep_ends``, the stem's first convolution and the classifier) stays in
higher precision where the tool allows it; where it does not, the description says so.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..utils.atomic import atomic_output
from ..utils.extras import require as require_extra
from ..utils.machine import machine
from .exporter import require

__all__ = ["QuantSettings", "quantize_onnx", "quantize_openvino", "quantize_pt2e", "reduce_range"]


@dataclass(frozen=True)
class QuantSettings:
    """How int8 is made: per-channel (default) or per-tensor weights, asymmetric (default) or symmetric activations,
    and which modules stay in higher precision."""

    per_channel: bool = True
    symmetric_activations: bool = False
    keep: tuple[str, ...] = ()  # module names (``model.named_modules``) left unquantized
    keep_ends: bool = False  # also the first convolution and the last linear layer

    def kept(self, model: nn.Module) -> tuple[str, ...]:
        """The module names to leave unquantized in ``model``; an unknown name is an error naming the choices."""
        names = dict(model.named_modules())
        unknown = [k for k in self.keep if k not in names]
        if unknown:
            tops = ", ".join(n for n in names if n and "." not in n)
            raise ValueError(f"--int8-keep: {unknown[0]!r} is not a module of the model (top level: {tops})")
        ends = ()
        if self.keep_ends:
            convs = [n for n, m in names.items() if isinstance(m, nn.Conv2d)]
            linears = [n for n, m in names.items() if isinstance(m, (nn.Linear, nn.Conv2d))]
            ends = tuple(dict.fromkeys(convs[:1] + linears[-1:]))
        return tuple(dict.fromkeys((*self.keep, *ends)))

    def describe(self, model: nn.Module | None = None, *, keeps: bool = True) -> str:
        text = f"{'per-channel' if self.per_channel else 'per-tensor'} int8 weights, "
        text += f"{'symmetric' if self.symmetric_activations else 'asymmetric'} activations"
        text += "; 7-bit range (no VNNI here)" if reduce_range() else ""
        kept = self.kept(model) if model is not None else self.keep
        if kept:
            text += f"; kept in higher precision: {' '.join(kept)}" if keeps else "; keep: not supported by this tool"
        return text


def reduce_range() -> bool:
    """7-bit activations where the CPU has no int8 dot product (VNNI): its u8×s8 instruction pairs saturate int16."""
    return not machine().vnni


def quantize_onnx(
    fp32: str | Path, out: str | Path, batches: Iterable[torch.Tensor], settings: QuantSettings = QuantSettings()
) -> Path:
    """Quantize ``fp32`` into ``out`` with ``batches`` (float32 NCHW tensors, the graph's own input size and batch)
    as the calibration set. Written to a temporary name and renamed. (ONNX Runtime's node names do not follow the
    module names, so ``settings.keep`` does not apply here.)"""
    require("onnxruntime")
    onnx = require("onnx")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str, data: Iterator[torch.Tensor]) -> None:
            self.name, self.data = name, data

        def get_next(self):
            x = next(self.data, None)
            return None if x is None else {self.name: x.float().contiguous().numpy()}

    fp32, out = Path(fp32), Path(out)
    name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name
    activations = QuantType.QInt8 if settings.symmetric_activations else QuantType.QUInt8
    with atomic_output(out) as tmp:  # the prepared model and any side file go with the private folder
        prepared = tmp.with_name("prepared.onnx")
        quant_pre_process(str(fp32), str(prepared))  # shape inference and graph clean-up, as ORT recommends
        quantize_static(
            str(prepared), str(tmp), Reader(name, iter(batches)), quant_format=QuantFormat.QDQ,
            per_channel=settings.per_channel, reduce_range=reduce_range(), activation_type=activations,
            weight_type=QuantType.QInt8,
            extra_options={"ActivationSymmetric": settings.symmetric_activations},
        )  # fmt: skip
    return out


def quantize_pt2e(
    fused: nn.Module, example: torch.Tensor, calibration: Sequence[torch.Tensor], settings: QuantSettings
) -> nn.Module:
    """``fused`` (eval mode, its own copy taken) exported at ``example``'s shape, observed on ``calibration`` and
    converted: a graph with quantize/dequantize pairs that ``torch.compile`` turns into int8 kernels. The
    quantizer's activations are asymmetric uint8 only; ``symmetric_activations`` is refused rather than ignored."""
    require_extra("torchao", "int8 through the compiler (inductor-int8)")
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if settings.symmetric_activations or not settings.per_channel:
        raise ValueError("inductor-int8 quantizes per channel with asymmetric activations only (X86InductorQuantizer)")
    model = copy.deepcopy(fused).float().eval()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(reduce_range=reduce_range()))
    for name in settings.kept(model):
        quantizer.set_module_name_qconfig(name, None)
    with torch.no_grad():
        graph = torch.export.export(model, (example.float(),)).module()
        prepared = prepare_pt2e(graph, quantizer)
        for x in calibration:
            prepared(x.float())
        return convert_pt2e(prepared)


def quantize_openvino(model, fused: nn.Module, calibration: Sequence[torch.Tensor], settings: QuantSettings):
    """An OpenVINO model (converted from ``fused``) quantized by NNCF on ``calibration``: weights per channel
    (NNCF's form; per-tensor is refused rather than ignored), activations symmetric (NNCF's "performance" preset)
    or asymmetric ("mixed"), the kept modules' nodes in the ignored scope."""
    nncf = require_extra("nncf", "int8 through OpenVINO (openvino-int8)")
    if not settings.per_channel:
        raise ValueError("openvino-int8 quantizes weights per channel only (NNCF)")
    preset = nncf.QuantizationPreset.PERFORMANCE if settings.symmetric_activations else nncf.QuantizationPreset.MIXED
    patterns = [rf"__module\.{re.escape(name)}(/|\.).*" for name in settings.kept(fused)]
    scope = nncf.IgnoredScope(patterns=patterns, validate=False) if patterns else None
    data = nncf.Dataset([x.float().contiguous().numpy() for x in calibration])
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws progress bars on stdout
        return nncf.quantize(model, data, subset_size=len(calibration), preset=preset, ignored_scope=scope)

"""int8 post-training static quantization through ONNX Runtime's own tools: QDQ format, per-channel int8 weights,
uint8 activations calibrated on the user's images (min-max over the calibration batches). The input is a float32
ONNX file from :func:`convscale.export`; the output runs in ONNX Runtime like it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from ..utils.atomic import atomic_output
from .exporter import require

__all__ = ["quantize_onnx"]


def quantize_onnx(fp32: str | Path, out: str | Path, batches: Iterable[torch.Tensor]) -> Path:
    """Quantize ``fp32`` into ``out`` with ``batches`` (float32 NCHW tensors, the graph's own input size and batch)
    as the calibration set. Written to a temporary name and renamed."""
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
    with atomic_output(out) as tmp:  # the prepared model and any side file go with the private folder
        prepared = tmp.with_name("prepared.onnx")
        quant_pre_process(str(fp32), str(prepared))  # shape inference and graph clean-up, as ORT recommends
        quantize_static(
            str(prepared), str(tmp), Reader(name, iter(batches)), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
    return out

"""OpenVINO as a deployment runtime: the fused model converted to OpenVINO's form at a fixed input shape, compiled
for this CPU with a latency hint and this process's thread count; OpenVINO picks the precision (bf16 where the CPU
has it natively, else fp32), and with ``int8`` NNCF quantizes it first (``quantize.quantize_openvino``)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..deployed.forms import ov_compiled
from ..utils.atomic import require_room
from ..utils.extras import require as require_extra
from .quantize import QuantSettings, quantize_openvino
from .runner import Runner

__all__ = ["openvino_runner"]


def openvino_runner(
    fused: nn.Module,
    example: torch.Tensor,
    calibration: Sequence[torch.Tensor] | None = None,
    settings: QuantSettings | None = None,
):
    """A :class:`~.runner.Runner` for ``fused`` in OpenVINO at ``example``'s shape; int8 when ``calibration``
    is given (NNCF, with ``settings``)."""
    ov = require_extra("openvino", "the openvino runtime")
    model = copy.deepcopy(fused).float().eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracing warns about shape checks that are constant at a fixed shape
        converted = ov.convert_model(model, example_input=example.float(), input=[tuple(example.shape)])
    int8 = calibration is not None
    if int8:
        converted = quantize_openvino(converted, fused, calibration, settings or QuantSettings())
    compiled, run = ov_compiled(ov, converted)
    chose = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    rest = "bf16" if "bf16" in chose or "bfloat16" in chose else "fp32"

    def save(folder: Path) -> list[str]:
        # OpenVINO's writer failing half-way on a full disk left objects whose teardown aborted the process once
        require_room(folder, sum(p.numel() for p in fused.parameters()) * (1 if int8 else 4))
        ov.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)
        return ["model.xml", "model.bin"]

    precision = f"int8+{rest}" if int8 else rest
    described = (settings or QuantSettings()).describe(fused) + " (NNCF)" if int8 else f"OpenVINO chose {rest}"
    return Runner("openvino-int8" if int8 else "openvino", run, [compiled, run.keep], precision, described, save)

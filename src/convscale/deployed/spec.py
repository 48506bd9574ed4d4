"""What a deployed folder records, below both the writer (``convscale.deploy``) and the reader
(``convscale.deployed``): the export spec (the input it expects and how to prepare it) and the runtimes' names."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

__all__ = ["RUNTIMES", "ExportSpec"]

#: every runtime a model can be deployed to (``convscale.deploy.runtimes`` builds them, ``deployed.forms`` opens them)
RUNTIMES = (
    "eager", "eager-bf16", "compile", "compile-bf16", "onnxruntime", "openvino",
    "inductor-int8", "inductor-int8-bf16", "onnxruntime-int8", "openvino-int8",
)  # fmt: skip


@dataclass(frozen=True)
class ExportSpec:
    """What the exported file is and expects: recorded in it as metadata."""

    model: str  # the registered name
    weights: str  # a published tag (``model.tag``), a run folder, or "random"
    res: int
    batch: int | str  # an int, or "dynamic"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float
    crop_mode: str
    interpolation: str
    normalize_in_graph: bool
    fused: bool
    num_classes: int
    classes: list[str] | None = None
    dynamic_size: bool = False  # height and width dynamic (``res`` is then the example and recommended size)

    def to_json(self) -> str:
        return json.dumps({"format": "convscale-export/1", **asdict(self)})

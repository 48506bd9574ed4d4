"""Exporting a model to the runtimes users deploy on: ONNX (through PyTorch's ``torch.export``-based exporter) and
``.pt2`` (``torch.export``'s own archive).

The exported graph is the model's inference form by default (:func:`convscale.deploy.fuse`: BN folded, RepVGG
re-parameterized, NFNet weight standardization precomputed), at a fixed image size (TensorFlow 'same' padding then
becomes constant pads) or with dynamic height and width (its pads computed in the graph from the input's shape),
and a fixed or dynamic batch. With ``normalize=True`` the graph takes RGB in [0, 1] and
normalizes inside it. The file records what a user needs to feed it: the model name, the weights it was exported
with, the image size and the preprocessing (resize, crop, interpolation, mean and std), as ONNX metadata properties
or a ``convscale.json`` entry in the ``.pt2`` archive. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..deployed.spec import ExportSpec
from ..utils.atomic import atomic_output, writable_folder

if TYPE_CHECKING:
    from ..source import Source

__all__ = [
    "FORMATS", "OPSETS", "ExportSpec", "export", "export_spec", "prepare_export", "read_metadata", "require", "stamp",
]  # fmt: skip

FORMATS = ("onnx", "pt2")
OPSETS = range(18, 24)  # what PyTorch's ONNX exporter writes (it converts to older opsets poorly or not at all)
MAX_BATCH = 4096


class Normalized(nn.Module):
    """RGB in [0, 1] -> the model's input: ``(x - mean) / std`` first."""

    def __init__(self, model: nn.Module, mean, std) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def export(model: nn.Module, out: str | Path, spec: ExportSpec, *, fmt: str = "onnx", opset: int = 18) -> Path:
    """Write ``model`` (eval mode; fused here when ``spec.fused``) to ``out`` in format ``fmt``; returns the path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "onnx" and opset not in OPSETS:
        raise ValueError(f"opset {opset} is not one PyTorch's ONNX exporter writes; expected {OPSETS[0]}-{OPSETS[-1]}")
    _check_spec(spec)
    net = _prepared(model, spec)
    x = torch.rand(2 if spec.batch == "dynamic" else spec.batch, 3, spec.res, spec.res)
    shapes = _dynamic_shapes(spec)
    out = Path(out)
    _check_writable(out)
    with atomic_output(out) as tmp:  # the exporter's side files (external .data) go with its private folder
        if fmt == "onnx":
            _onnx(net, x, shapes, tmp, spec, opset)
        else:
            program = torch.export.export(net, (x,), dynamic_shapes=shapes)
            torch.export.save(program, str(tmp), extra_files={"convscale.json": spec.to_json()})
    return out


def _check_writable(out: Path) -> None:
    """``out`` can be written: its folder takes files and it is not a folder itself; else a ValueError naming it."""
    writable_folder(out.parent, f"cannot write {out}")
    if out.is_dir():
        raise ValueError(f"cannot write {out}: it is a folder (give a file name ending in .onnx or .pt2)")


def _dynamic_shapes(spec: ExportSpec) -> dict[str, dict[int, Any]] | None:
    dims: dict[int, Any] = {}
    if spec.batch == "dynamic":
        dims[0] = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    if spec.dynamic_size:  # DYNAMIC, not a named Dim: the exporter derives each stride's constraints itself
        dims[2] = dims[3] = torch.export.Dim.DYNAMIC
    return {"x": dims} if dims else None


def _check_spec(spec: ExportSpec) -> None:
    if not isinstance(spec.res, int) or not 32 <= spec.res <= 4096:
        raise ValueError(f"export size must be an integer in [32, 4096], got {spec.res!r}")
    if spec.batch != "dynamic" and not (isinstance(spec.batch, int) and 1 <= spec.batch <= MAX_BATCH):
        raise ValueError(f"batch must be an integer in [1, {MAX_BATCH}] or 'dynamic', got {spec.batch!r}")


def _prepared(model: nn.Module, spec: ExportSpec) -> nn.Module:
    from .fuse import fuse

    net = model.eval()
    if spec.fused:
        net = fuse(net).to(memory_format=torch.contiguous_format)  # the exporter decides its own layout
    return Normalized(net, spec.mean, spec.std).eval() if spec.normalize_in_graph else net


def _onnx(net: nn.Module, x: torch.Tensor, shapes: Any, path: Path, spec: ExportSpec, opset: int) -> None:
    onnx = require("onnx")
    require("onnxscript")
    import logging
    import warnings

    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net, (x,), str(path), dynamo=True, opset_version=opset, dynamic_shapes=shapes, verbose=False,
                input_names=["image"], output_names=["logits"],
            )  # fmt: skip
    except Exception as e:  # the exporter's own failure: one line, with its reason
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"the ONNX exporter refused {spec.model} at opset {opset}: {reason[:300]}") from None
    finally:
        quiet.setLevel(level)
    stamp(path, spec, onnx)


def stamp(path: str | Path, spec: ExportSpec, onnx=None) -> None:
    """Record ``spec`` in the ONNX file ``path`` as its ``convscale`` metadata (replacing any there): what the file
    expects, for :func:`read_metadata` and ``convscale.load``."""
    onnx = onnx or require("onnx")
    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key != "convscale"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "convscale", spec.to_json()
    onnx.save(proto, str(path))


def require(module: str):
    """``module`` imported, or :class:`~.extras.MissingExtra` naming the ``convscale[onnx]`` extra."""
    from ..utils import extras

    return extras.require(module, "exporting to or running ONNX")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``ExportSpec`` recorded in an exported ``.onnx`` or ``.pt2`` file, as a dict."""
    path = Path(path)
    if path.suffix == ".onnx":
        onnx = require("onnx")
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props["convscale"])
    import zipfile

    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("extra/convscale.json"))
        return json.loads(z.read(name))


def prepare_export(
    source: str,
    *,
    pretrained: bool | str | None = None,
    res: int | None = None,
    batch: int | str = 1,
    normalize: bool = False,
    fused: bool = True,
    weights: str = "auto",
    dynamic_size: bool = False,
) -> tuple[nn.Module, ExportSpec]:
    """The model and its :class:`ExportSpec` for ``source`` (anything :func:`convscale.resolve` takes)."""
    from ..source import resolve

    src = resolve(source, pretrained=pretrained, weights=weights)
    return src.model, export_spec(
        src, res=res, batch=batch, normalize=normalize, fused=fused, dynamic_size=dynamic_size
    )


def export_spec(
    src: Source, *, res: int | None = None, batch: int | str = 1, normalize=False, fused=True, dynamic_size=False
) -> ExportSpec:
    """What an export of ``src`` records: its weights, classes and evaluation policy (a run's own, published
    weights', else ImageNet's)."""
    p = src.policy
    recorded = str(src.path) if src.kind == "run" else src.weights
    # a run records its class folders; published weights their readable labels (where they have them)
    classes = src.folders if src.kind == "run" else (src.labels if src.folders is not None else None)
    return ExportSpec(
        src.name, recorded, res or p.test_res, batch, p.mean, p.std, p.crop_pct, p.crop_mode, p.interpolation,
        normalize, fused, len(src.labels), classes, dynamic_size,
    )  # fmt: skip

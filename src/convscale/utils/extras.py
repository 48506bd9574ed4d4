"""The optional extras: which package each one brings, importing it lazily, and saying once when it is missing.

A plain ``pip install convscale`` trains, resumes, evaluates, predicts, benchmarks and deploys; an extra only adds.
Where a command can go on without one (a plot, TensorBoard logs, a runtime among several), it says so once, in one
line naming the extra, and goes on; where it cannot do its job (ONNX export; ``convscale search``, whose engine is
Optuna), it stops with that line.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["EXTRAS", "MissingExtra", "available", "install_hint", "note_missing", "require", "without_telemetry"]

#: importable module -> the extra that installs it
EXTRAS = {
    "matplotlib": "plot",
    "huggingface_hub": "hub",
    "onnx": "onnx",
    "onnxscript": "onnx",
    "onnxruntime": "onnx",
    "tensorboard": "tensorboard",
    "torchao": "int8",
    "openvino": "openvino",
    "nncf": "openvino",
    "webdataset": "webdataset",
    "braceexpand": "webdataset",
    "starlette": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "optuna": "search",
}


class MissingExtra(ImportError):
    """An optional package is not installed; the message names the extra that brings it."""

    def __init__(self, module: str, purpose: str) -> None:
        self.module, self.extra = module, EXTRAS.get(module.split(".")[0], "")
        super().__init__(f"{purpose} needs {module.split('.')[0]}: {install_hint(self.module)}")


def install_hint(module: str) -> str:
    extra = EXTRAS.get(module.split(".")[0])
    return f"pip install 'convscale[{extra}]'" if extra else f"pip install {module.split('.')[0]}"


#: packages that send usage telemetry unless kept from it; OpenVINO's model converter and NNCF fall back to their own
#: stubs when ``openvino_telemetry`` does not import (and no longer write a consent folder under ``~/intel``)
_TELEMETRY = {"openvino": "openvino_telemetry", "nncf": "openvino_telemetry"}


def without_telemetry(module: str) -> None:
    """Keep ``module`` from its usage telemetry: the telemetry package is marked as not importable before ``module``
    is first imported (a process that imported it already keeps its own choice)."""
    blocked = _TELEMETRY.get(module.split(".")[0])
    if blocked is not None and blocked not in sys.modules:
        sys.modules[blocked] = None  # type: ignore[assignment]  # `import openvino_telemetry` raises ImportError


def require(module: str, purpose: str) -> ModuleType:
    """``module`` imported, or :class:`MissingExtra` saying that ``purpose`` needs it and which extra to install.
    OpenVINO and NNCF are imported without their usage telemetry (:func:`without_telemetry`)."""
    without_telemetry(module)
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(module, purpose) from None


def available(module: str) -> bool:
    """Whether ``module`` imports (its import is attempted: a package hidden or broken counts as missing)."""
    without_telemetry(module)
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


_SAID: set[str] = set()


def note_missing(error: ImportError, what: str, log: Callable[[str], Any] | None = None) -> None:
    """Say once per process (per message) that ``what`` is left out because of ``error``, then go on."""
    line = f"{what} left out: {error}"
    if line in _SAID:
        return
    _SAID.add(line)
    if log is None:
        print(f"convscale: {line}", file=sys.stderr, flush=True)
    else:
        log(line)

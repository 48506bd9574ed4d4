"""The optional extras: which package each one brings, importing it lazily, and saying once when it is missing.

A plain ``pip install convscale`` trains, resumes, evaluates, predicts, benchmarks and searches; an extra only
adds. Where a command can go on without one (a plot, TensorBoard logs, a runtime among several), it says so once,
in one line naming the extra, and goes on; where it cannot do its job (ONNX export), it stops with that line.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["EXTRAS", "MissingExtra", "available", "install_hint", "note_missing", "require"]

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
}


class MissingExtra(ImportError):
    """An optional package is not installed; the message names the extra that brings it."""

    def __init__(self, module: str, purpose: str) -> None:
        self.module, self.extra = module, EXTRAS.get(module.split(".")[0], "")
        super().__init__(f"{purpose} needs {module.split('.')[0]}: {install_hint(self.module)}")


def install_hint(module: str) -> str:
    extra = EXTRAS.get(module.split(".")[0])
    return f"pip install 'convscale[{extra}]'" if extra else f"pip install {module.split('.')[0]}"


def require(module: str, purpose: str) -> ModuleType:
    """``module`` imported, or :class:`MissingExtra` saying that ``purpose`` needs it and which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(module, purpose) from None


def available(module: str) -> bool:
    """Whether ``module`` imports (its import is attempted: a package hidden or broken counts as missing)."""
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

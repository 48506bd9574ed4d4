"""A runtime's way to run a model: the callable every runtime builds (``runtimes.py``, ``openvino.py``) and
``optimize`` compares, with what it must keep alive, its precision and how it writes itself out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["Runner"]


@dataclass
class Runner:
    """One runtime's way to run the model: ``fn(x) -> logits`` (float32 out), and what it keeps alive."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    keep: list = field(default_factory=list)  # files and sessions that must outlive fn
    precision: str = "fp32"  # of its multiply-adds: fp32, bf16, int8, int8+bf16 (int8 with bf16 for the rest)
    settings: str = ""  # how it was made (the quantization's choices), for the report
    save: Callable[[Path], list[str]] | None = None  # writes its own deployable file(s) into a folder

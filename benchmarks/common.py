"""What the benchmark scripts share: interleaved timing (``convscale.utils.timing``, the package's one timer: the
same machine state for every contender) and CSV output."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from convscale.utils import timing
from convscale.utils.atomic import atomic_write_csv


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int, iters: int) -> dict[str, list[float]]:
    """Seconds per call of each contender, ``rounds`` samples of ``iters`` calls; the order alternates per round."""
    return timing.rounds(contenders, torch.device("cpu"), rounds, iters)


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    """``rows`` as CSV (the header: every row's keys), written atomically; the folder is made if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(path, rows)

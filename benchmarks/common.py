"""What the benchmark scripts share: interleaved timing (``convscale.utils.timing``, the package's one timer: the
same machine state for every contender) and CSV output."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import torch

from convscale.utils import timing


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int, iters: int) -> dict[str, list[float]]:
    """Seconds per call of each contender, ``rounds`` samples of ``iters`` calls; the order alternates per round."""
    return timing.rounds(contenders, torch.device("cpu"), rounds, iters)


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        fields = list(dict.fromkeys(k for row in rows for k in row))  # every row's keys, first seen first
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)

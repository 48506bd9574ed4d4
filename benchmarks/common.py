"""What the benchmark scripts share: interleaved timing (same machine state for every contender) and CSV output."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int, iters: int) -> dict[str, list[float]]:
    """Seconds per call of each contender, ``rounds`` samples of ``iters`` calls; the order alternates per round."""
    for fn in contenders.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(rounds):
        order = list(contenders.items())
        for label, fn in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            for _ in range(iters):
                fn()
            times[label].append((time.perf_counter() - start) / iters)
    return times


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

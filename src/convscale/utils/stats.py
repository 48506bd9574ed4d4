"""Small statistics the searches and their benchmarks report: ranks, Spearman's rank correlation, a mean with its
spread over seeds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["mean_spread", "ranks", "spearman"]


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of their positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties averaged)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"spearman needs two sequences of the same length >= 2, got {len(x)} and {len(y)}")
    return statistics.correlation(ranks(x), ranks(y))


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0.0 for a single value: no spread is known)."""
    if not values:
        raise ValueError("mean_spread needs at least one value")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

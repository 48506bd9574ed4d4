"""Whole-network latency that decides: every candidate measured against the base in the same rounds.

A round times a freshly built copy of the base and of each candidate in turn (the order reversed every other
round), so a neighbour's load or the machine's drift slows them alike; a candidate's latency is the median over the
rounds of its time divided by the base's in the same round (``ratio``), times the base's median. Rounds go on until
every network's spread — the median absolute deviation of its ratios, relative to their median — is within
``bound``, or ``max_rounds`` are spent, and the network is then reported as noisy. The latency table only predicts,
to prune; these measurements are what a budget is checked against.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..models.efficientnet import EfficientNetConfig
from . import latency
from .latency import Setting

__all__ = ["Measured", "measure_against_base"]


@dataclass(frozen=True)
class Measured:
    """A network's measured latency: ``ms`` per call, ``ratio`` to the base measured in the same rounds, the
    ``spread`` of that ratio (relative median absolute deviation), the ``rounds`` it took, and whether the spread
    stayed above the bound (``noisy``)."""

    ms: float
    ratio: float
    spread: float
    rounds: int
    noisy: bool

    def row(self) -> dict[str, float | int | bool]:
        return {
            "measured_ms": round(self.ms, 3),
            "measured_ratio": round(self.ratio, 4),
            "measured_spread": round(self.spread, 4),
            "measured_rounds": self.rounds,
            "noisy": self.noisy,
        }


def _spread(values: list[float]) -> float:
    mid = statistics.median(values)
    return statistics.median(abs(v - mid) for v in values) / mid


def measure_against_base(
    base: tuple[EfficientNetConfig, int],
    networks: Mapping[str, tuple[EfficientNetConfig, int]],
    setting: Setting,
    *,
    bound: float = 0.03,
    min_rounds: int = 3,
    max_rounds: int = 9,
    min_time: float = 0.3,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[Measured, dict[str, Measured]]:
    """The base's and each network's :class:`Measured`, from rounds interleaving them (see the module)."""
    if min_rounds < 1 or max_rounds < min_rounds or bound <= 0:
        raise ValueError(f"need 1 <= min_rounds <= max_rounds and bound > 0, got {min_rounds}, {max_rounds}, {bound}")
    everyone = {"": base, **networks}  # "" is the base: not a label a candidate can take
    times: dict[str, list[float]] = {k: [] for k in everyone}
    order = list(everyone)
    for r in range(max_rounds):
        for key in order if r % 2 == 0 else order[::-1]:
            cfg, res = everyone[key]
            times[key].append(latency.measure_network(cfg, res, setting, min_time=min_time))
        ratios = {k: [t / b for t, b in zip(v, times[""], strict=True)] for k, v in times.items() if k}
        spreads = {"": _spread(times[""]), **{k: _spread(v) for k, v in ratios.items()}}
        if r + 1 >= min_rounds and max(spreads.values()) <= bound:
            break
    rounds = len(times[""])
    base_s = statistics.median(times[""])
    noisy = [k or "base" for k, s in spreads.items() if s > bound]
    if noisy:
        log(f"  noisy after {rounds} rounds (spread > {bound:.0%}): {', '.join(noisy)}")
    result = {}
    for k, v in ratios.items():
        ratio = statistics.median(v)
        result[k] = Measured(ratio * base_s * 1e3, ratio, spreads[k], rounds, spreads[k] > bound)
    return Measured(base_s * 1e3, 1.0, spreads[""], rounds, spreads[""] > bound), result

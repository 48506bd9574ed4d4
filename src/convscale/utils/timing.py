"""Interleaved per-call timing on CPU, CUDA or MPS: every contender of a comparison is timed in the same loop,
alternating order round by round, so that a noisy, shared machine slows all of them alike. Each call is timed on
its own (CUDA: events, then synchronisation), which gives the spread (p10/p90) as well as the median. The one timer
of the package: ``convscale bench``, ``deploy.optimize``'s runtimes, the search's latency table and whole-network
rounds, the peaks of ``deploy.roofline`` and the scripts in ``benchmarks/`` all time through it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Timing", "bf16_ok", "fastest_rate", "measure", "rounds", "synchronize", "time_call"]


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median, 10th and 90th percentile over ``iters`` timed calls."""

    median: float
    p10: float
    p90: float
    iters: int

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        if len(samples) == 1:
            return cls(samples[0], samples[0], samples[0], 1)
        deciles = statistics.quantiles(samples, n=10, method="inclusive")
        return cls(statistics.median(samples), deciles[0], deciles[-1], len(samples))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def bf16_ok(device: torch.device) -> bool:
    """Whether PyTorch runs bf16 on ``device`` (CUDA with bf16, or a CPU whose oneDNN takes bf16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return (
        device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    synchronize(device)
    start_s = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start_s


def measure(
    contenders: dict[str, Callable[[], object]],
    device: torch.device,
    *,
    warmup: int = 3,
    min_iters: int = 10,
    min_time: float = 2.0,
    max_iters: int = 10_000,
) -> dict[str, Timing]:
    """Time each contender: ``warmup`` untimed calls each, then rounds of one timed call per contender (the order
    reversed every other round) until each has at least ``min_iters`` calls and ``min_time`` seconds of them."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
        synchronize(device)
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    order = list(contenders.items())
    rounds = 0
    while rounds < max_iters and any(len(s) < min_iters or sum(s) < min_time for s in samples.values()):
        for label, fn in order if rounds % 2 == 0 else order[::-1]:
            samples[label].append(time_call(fn, device))
        rounds += 1
    return {k: Timing.of(v) for k, v in samples.items()}


def rounds(
    contenders: dict[str, Callable[[], object]], device: torch.device, count: int, iters: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each contender in each of ``count`` rounds of ``iters`` calls, the order reversed every
    other round, after one untimed call each (the form the benchmarks report per round)."""
    for fn in contenders.values():
        fn()
    synchronize(device)
    times: dict[str, list[float]] = {k: [] for k in contenders}
    order = list(contenders.items())
    for r in range(count):
        for label, fn in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            for _ in range(iters):
                fn()
            synchronize(device)
            times[label].append((time.perf_counter() - start) / iters)
    return times


def fastest_rate(kernels: list[tuple[Callable[[], object], float]], device: torch.device, seconds: float) -> float:
    """The best rate (work per second) over ``kernels`` — each ``(fn, work of one call)`` — taking each kernel's
    fastest call over about ``seconds`` after one untimed call: the machine's peak for that kind of work."""
    best = 0.0
    for fn, work in kernels:
        fn()  # warm-up
        fastest, deadline = float("inf"), time.perf_counter() + seconds
        while time.perf_counter() < deadline or fastest == float("inf"):
            fastest = min(fastest, time_call(fn, device))
        best = max(best, work / fastest)
    return best

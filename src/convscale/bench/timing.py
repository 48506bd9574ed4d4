"""Measuring: interleaved per-call timing, peak memory, and the machine's matmul peak, on CPU, CUDA or MPS.

Every contender of a comparison is timed in the same loop, alternating order round by round, so that a noisy,
shared machine slows all of them alike. Each call is timed on its own (CUDA: events, then synchronisation), which
gives the spread (p10/p90) as well as the median.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["Timing", "matmul_peak", "measure", "peak_memory_mb", "synchronize"]


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


def _time_call(fn: Callable[[], object], device: torch.device) -> float:
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
            samples[label].append(_time_call(fn, device))
        rounds += 1
    return {k: Timing.of(v) for k, v in samples.items()}


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _max_rss_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def _release_free_heap() -> None:
    """Hand memory that malloc keeps after frees back to the system (glibc), so that RSS growth shows the call's own
    working set rather than what an earlier call left cached."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory of one call, in MiB. CUDA: the allocator's maximum allocated during the call (weights and inputs
    included). CPU: growth of the resident set over its level before the call (Linux resets the high-water mark
    through ``/proc/self/clear_refs``; elsewhere the process's lifetime peak can hide growth, so this is a lower
    bound). MPS: memory allocated after the call."""
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "mps":
        fn()
        synchronize(device)
        return torch.mps.current_allocated_memory() / 2**20
    _release_free_heap()
    before = _rss_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        fn()
        peak = _rss_kib("VmHWM")
    except OSError:
        before, peak = _max_rss_kib(), None
        fn()
    if peak is None or before is None:
        peak = _max_rss_kib()
    return max(0, peak - before) / 1024


def matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 0.3) -> float:
    """Multiply-adds per second of a square matmul in ``dtype``: the rate the machine's dense math reaches here,
    the reference for each model's achieved rate. The best of repeated calls over about ``seconds``."""
    n = 1024 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    _time_call(lambda: a @ b, device)  # warm-up
    while True:
        best = min(best, _time_call(lambda: a @ b, device))
        if time.perf_counter() > deadline:
            break
    return n**3 / best

"""Peak memory of a call on CPU, CUDA or MPS (timing is ``utils.timing``'s, the one timer; the matmul peak is
``deploy.roofline``'s)."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["peak_memory_mb"]

from ..utils.timing import synchronize


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

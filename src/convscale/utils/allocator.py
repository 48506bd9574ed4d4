"""The C library's allocator, set for training on the CPU.

glibc's ``malloc`` hands blocks above a threshold (128 KiB at first, growing to at most 32 MiB) to ``mmap`` and gives
them back to the system when freed, and trims the heap's free top above twice that. A training step allocates its
activations and gradients and frees them all at its end, so with these defaults the next step takes the same memory
back from the system page by page: on this repository's 2-core machine, ResNet-18's step at batch 64 spent 15% of its
time so (250 against 285 images/s in ``convscale train``, and a compiled model lost more than an eager one). Raising
both thresholds keeps freed memory in the process for the next step — what PyTorch's own launcher gets by preloading
jemalloc or tcmalloc. The cost: the process keeps its peak memory until it exits.

``CONVSCALE_KEEP_FREED_MEMORY=0`` leaves the allocator as it is. Other C libraries (musl, macOS, Windows) are left
alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["ENV", "keep_freed_memory"]

ENV = "CONVSCALE_KEEP_FREED_MEMORY"
_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # 1 GiB: larger than any one activation of the models and batches trained here


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds to 1 GiB in this process; True when they were set."""
    if not sys.platform.startswith("linux") or os.environ.get(ENV, "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the mmap threshold first: setting either one stops glibc from moving both on its own
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))

"""Keep freed tensor memory in the process on the CPU (glibc's ``mallopt``), once per process.

Why: glibc hands every allocation above its mmap threshold (128 KiB at start, adapting up to 32 MiB)
to a fresh ``mmap`` and unmaps it when freed, and trims the heap's free top back to the system.
A fused CPU group allocates the same large activations every step (80 quickstart models: ~20 MB per
layer), so every step page-faults them in again: measured on the 2-core box, a third of the run's
system time (24 s of 74 s wall) and ~13% of the 80-model retrain step (1.96 -> 1.70 ms per
model-step, docs/speed.md). Raising both thresholds keeps freed blocks for the next step. The
numbers a run computes do not change (allocation only). Elsewhere (not glibc, macOS): nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc's malloc.h
MMAP_THRESHOLD = 32 * 2**20   # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 1 * 2**30    # free heap top above this still goes back to the system

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Sets the thresholds (first call only); whether they are in effect in this process."""
    global _done
    if _done is None:
        _done = _set_thresholds()
    return _done


def _set_thresholds() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))

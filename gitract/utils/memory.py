"""Give freed memory back to the operating system between scans.

Per-scan stages allocate and free large, differently sized arrays (probability maps,
feature maps of a dense CNN pass); glibc's allocator may keep the freed pages in its heap,
so a process's resident memory creeps up with the number of scans although nothing is
kept. ``release_memory()`` asks glibc to return them (``malloc_trim``); elsewhere it does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


def release_memory() -> bool:
    """Return freed heap pages to the OS where the C library allows it (glibc)."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


def resident_mb() -> float:
    """This process's resident memory in MB (psutil), for the stage records."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20

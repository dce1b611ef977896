"""Keep glibc from holding on to request-sized blocks.

A batch body is a few hundred KiB, made and freed once per request. glibc serves such
blocks with mmap at first, but after the first free it raises its mmap threshold and
carves them from the heap instead, where they fragment it: the client's RSS then creeps
up with the length of the run. A fixed threshold keeps them on mmap, returned to the
system as soon as they are sent. Nothing happens on other C libraries.
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3
THRESHOLD = 64 * 1024


def tune_allocator() -> bool:
    """Fix glibc's mmap threshold; True if it was done."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))

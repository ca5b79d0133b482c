"""Giving memory back to the operating system once inference is over (standard library only)."""

from __future__ import annotations

import ctypes
import functools
import gc
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (in the symbols the process already has, so no
    ``ldconfig`` run); None where the C library has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_memory() -> None:
    """Hand memory freed by finished inference back to the operating system: a garbage
    collection, then glibc's ``malloc_trim(0)`` (large freed blocks otherwise stay in the
    process heap). Called by the watcher when the session goes back to idle; a no-op where
    the C library has no ``malloc_trim``."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)

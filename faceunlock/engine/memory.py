"""Giving memory back to the operating system once inference is over (standard library only)."""

from __future__ import annotations


def release_memory() -> None:
    """Hand memory freed by finished inference back to the operating system: a garbage
    collection, then glibc's ``malloc_trim(0)`` (large freed blocks otherwise stay in the
    process heap). Called by the watcher when the session goes back to idle; a no-op where
    the C library has no ``malloc_trim``."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)

"""faceunlock.engine.memory: freed heap memory goes back to the operating system."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from faceunlock.engine import memory


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_returns_freed_heap_blocks() -> None:
    assert memory._malloc_trim() is memory._malloc_trim() is not None  # looked up once
    # 64 KiB blocks stay below glibc's mmap threshold: freed, they stay in the heap
    blocks = [np.ones(8192) for _ in range(4000)]  # ~250 MB
    keep = np.ones(8)  # noqa: F841 - something allocated after them, so the heap cannot shrink
    del blocks
    before = _rss_kb()
    memory.release_memory()
    assert _rss_kb() < before - 100_000

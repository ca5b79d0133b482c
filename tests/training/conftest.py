"""Fixtures shared by the training tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture()
def one_torch_thread() -> Iterator[None]:
    """torch on one intra-op thread for the test (exact, repeatable float sums; restored after)."""
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

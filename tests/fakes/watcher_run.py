"""A :class:`~faceunlock.unlock.watcher.Watcher` run in a thread with its events recorded, for
the watcher and logind tests."""

from __future__ import annotations

import threading
from typing import Any

from faceunlock.unlock.watcher import Watcher, WatcherEvent, WatcherState
from tests.fakes import fake_screensaver as fs


def make_watcher(backend: Any, attempt: Any, **kw: Any) -> Watcher:
    """A watcher for tests: no lid or display check, retries after 0.05 s, at most 0.2 s."""
    kw.setdefault("lid", lambda: None)
    kw.setdefault("retry_interval", 0.05)
    kw.setdefault("max_interval", 0.2)
    return Watcher(backend, attempt, **kw)


class Run:
    """A watcher running in a thread, with its events recorded."""

    def __init__(self, watcher: Watcher, *, once: bool = True) -> None:
        self.watcher = watcher
        self.events: list[WatcherEvent] = []
        self.error: BaseException | None = None
        watcher.subscribe(self.events.append)
        self.thread = threading.Thread(target=self._run, args=(once,), daemon=True)
        self.thread.start()

    def _run(self, once: bool) -> None:
        try:
            self.watcher.run(once=once)
        except BaseException as e:
            self.error = e

    def states(self) -> list[str]:
        return [e.state.value for e in self.events]

    def wait_state(self, state: WatcherState, count: int = 1, timeout: float = 10.0) -> None:
        fs.wait_until(
            lambda: sum(e.state == state for e in self.events) >= count,
            f"{count} x {state.value} (got {self.states()})",
            timeout,
        )

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.watcher.stop()
            self.thread.join(5)
            raise AssertionError(f"watcher did not finish; events {self.states()}")
        if self.error is not None:
            raise self.error

"""The lock-screen watcher inside the desktop app.

:class:`WatcherController` runs :func:`~faceunlock.unlock.lockstate.detect_backend` and
:meth:`Watcher.run <faceunlock.unlock.watcher.Watcher.run>` in a ``QThread``, as
``faceunlock watch`` does in the foreground. The camera is opened only inside an attempt
(:class:`~faceunlock.unlock.watcher.AuthAttempt`), never while the session is unlocked.

Every :class:`~faceunlock.unlock.watcher.WatcherEvent` reaches the GUI thread through the
``watcher_event`` signal (a queued connection); a watcher that cannot start or stops on an error
emits ``failed`` with a plain-language message. Events of a run that was stopped are dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import QObject, Qt, QThread, pyqtSignal

from faceunlock.config import Config, load_config
from faceunlock.engine.templates import TemplateStore
from faceunlock.ui.workers import plain_message
from faceunlock.unlock.lockstate import LockBackend, detect_backend
from faceunlock.unlock.watcher import RunAttempt, Watcher, WatcherEvent

log = logging.getLogger(__name__)


class _WatchThread(QThread):
    """Runs one watcher: build the backend and the attempt, then ``Watcher.run`` until
    stopped. Reports through the controller's relay signals, tagged with its generation."""

    def __init__(self, ctl: WatcherController, generation: int) -> None:
        super().__init__()
        self.ctl = ctl
        self.generation = generation
        self.watcher: Watcher | None = None
        self._lock = threading.Lock()
        self._stopping = False

    def request_stop(self) -> None:
        """Thread-safe: a running watcher stops at once (its wait is woken, an attempt ends
        at its next frame); one not yet built is not started."""
        with self._lock:
            self._stopping = True
            w = self.watcher
        if w is not None:
            w.stop()  # sets the flag and wakes backend.wait_event

    def _event(self, ev: WatcherEvent) -> None:
        self.ctl._event_relay.emit(self.generation, ev)

    def run(self) -> None:
        backend: LockBackend | None = None
        try:
            if self._stopping:
                return
            backend = self.ctl.backend_factory()
            attempt = self.ctl.attempt_factory()
            watcher = Watcher(backend, attempt, on_event=self._event, **self.ctl.watcher_kw)
            with self._lock:
                self.watcher = watcher
                stopping = self._stopping
            if not stopping:
                watcher.run()
        except Exception as e:  # every failure reaches the GUI as words
            log.warning("lock-screen watcher stopped: %s", e)
            if not self._stopping:
                self.ctl._failed_relay.emit(self.generation, plain_message(e))
        finally:
            if backend is not None:
                try:
                    backend.close()
                except Exception:
                    log.exception("closing the lock-state backend failed")


class WatcherController(QObject):
    """Start/stop the lock-screen watcher of ``user`` off the GUI thread.

    backend_factory: returns a :class:`LockBackend` (called in the watcher thread; default
    ``detect_backend(cfg.watcher.backend)``); attempt_factory: returns the
    :data:`RunAttempt` (default ``AuthAttempt(store, user, load_config)``, as
    ``faceunlock watch`` builds it: the config, camera.source included, is re-read at every
    attempt); watcher_kw: extra ``Watcher`` arguments. ``cfg`` may be replaced (Settings)
    before the next :meth:`start`."""

    watcher_event = pyqtSignal(object)  # WatcherEvent
    failed = pyqtSignal(str)

    _event_relay = pyqtSignal(int, object)
    _failed_relay = pyqtSignal(int, str)

    def __init__(
        self,
        store: TemplateStore,
        cfg: Config,
        user: str,
        *,
        backend_factory: Callable[[], LockBackend] | None = None,
        attempt_factory: Callable[[], RunAttempt] | None = None,
        watcher_kw: dict[str, Any] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.cfg = cfg
        self.user = user
        self.backend_factory: Callable[[], LockBackend] = backend_factory or self._default_backend
        self.attempt_factory: Callable[[], RunAttempt] = attempt_factory or self._default_attempt
        self.watcher_kw: dict[str, Any] = dict(watcher_kw or {})
        self._thread: _WatchThread | None = None
        self._generation = 0
        # the relays are emitted in the watcher thread; queued: the slots run in this
        # object's (the GUI) thread
        self._event_relay.connect(self._deliver_event, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]
        self._failed_relay.connect(self._deliver_failed, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]

    # ---- defaults (called in the watcher thread)

    def _default_backend(self) -> LockBackend:
        return detect_backend(self.cfg.watcher.backend)

    def _default_attempt(self) -> RunAttempt:
        from faceunlock.app import service
        from faceunlock.unlock.watcher import AuthAttempt

        service.pipeline_for(self.cfg)  # load the models now, not at the first lock
        # source None: each attempt uses camera.source of the config it re-reads
        return AuthAttempt(self.store, self.user, load_config, None)

    # ---- control

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    @property
    def watcher(self) -> Watcher | None:
        """The current run's watcher (None before it is built or after stop())."""
        return None if self._thread is None else self._thread.watcher

    def start(self) -> None:
        """Start watching (no-op while running)."""
        if self.running:
            return
        self._generation += 1
        self._thread = _WatchThread(self, self._generation)
        self._thread.start()

    def stop(self, wait_ms: int = 15_000) -> bool:
        """Stop watching and wait for the thread; True when it ended within ``wait_ms``.
        Events the stopped run still had queued are dropped."""
        t = self._thread
        self._generation += 1
        if t is None:
            return True
        t.request_stop()
        ok = bool(t.wait(wait_ms))
        if ok:
            self._thread = None
        else:
            log.warning("the lock-screen watcher did not stop within %d ms", wait_ms)
        return ok

    def restart(self) -> None:
        self.stop()
        self.start()

    # ---- GUI-thread side

    def _deliver_event(self, generation: int, ev: WatcherEvent) -> None:
        if generation == self._generation:
            self.watcher_event.emit(ev)

    def _deliver_failed(self, generation: int, message: str) -> None:
        if generation == self._generation:
            self.failed.emit(message)

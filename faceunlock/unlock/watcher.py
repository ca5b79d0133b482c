"""The lock-screen watcher: when the session locks, look for the enrolled face and unlock.

:class:`Watcher` runs on one :class:`~faceunlock.unlock.lockstate.LockBackend`:

* while the session is unlocked it blocks in ``backend.wait_event`` (``select()`` on the bus
  socket): no camera, no polling, no CPU;
* when the session locks it runs an attempt at once (the attempt opens the camera,
  authenticates for up to ``auth.timeout`` and closes the camera). Recognised -> unlock:
  each of ``backend.unlock_methods()`` in turn (logind's ``Session.Unlock``, then
  ``SetActive(false)`` where the lock screen has it) until the lock screen's own state
  confirms it within ``confirm_timeout`` (an UNLOCKED event, or ``backend.is_locked()``
  false). No confirmation is a failed unlock: logged, reported as an ``error`` event with
  status ``UNLOCK_FAILED`` (the tray and ``faceunlock watch`` notify it), and retried like a
  failed attempt. Not recognised -> wait ``retry_interval`` with the camera closed,
  doubling up to ``max_interval``, for at most ``max_attempts`` attempts per lock; a lock-out
  of the failure counter (``LOCKED_OUT``), a missing template or disabled face unlock end the
  tries for this lock at once;
* the password keeps working: an unlock by any other means is seen while waiting and during
  an attempt (``should_stop`` polls the bus between frames), which stops at the next frame;
* a closed laptop lid or displays that are all off pause the attempts (re-checked every
  ``lid_poll`` seconds; see :func:`~faceunlock.unlock.lockstate.camera_pointless`).

Every change of state is reported to subscribers as a :class:`WatcherEvent` (for the tray
app and ``faceunlock watch --json``), on the watcher's thread.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faceunlock.engine.memory import release_memory
from faceunlock.errors import AuthStatus, FaceUnlockError, TemplateError, WatcherError
from faceunlock.unlock.lockstate import LockBackend, LockEvent, camera_pointless

if TYPE_CHECKING:
    from faceunlock.config import Config
    from faceunlock.engine.auth import AuthResult, FrameResult
    from faceunlock.engine.templates import TemplateStore

log = logging.getLogger(__name__)

#: one attempt: takes ``should_stop`` (poll it between frames), returns the outcome
RunAttempt = Callable[[Callable[[], bool]], AuthStatus]

#: outcomes after which trying again during this lock cannot help
FINAL = frozenset(
    {
        AuthStatus.LOCKED_OUT,
        AuthStatus.NO_TEMPLATE,
        AuthStatus.TEMPLATE_ERROR,
        AuthStatus.KEYRING_ERROR,
        AuthStatus.DISABLED,
        AuthStatus.MODEL_ERROR,
        AuthStatus.BAD_INPUT,
        AuthStatus.USAGE,
    }
)
#: seconds to wait for the lock screen to confirm an unlock before calling it failed
CONFIRM_TIMEOUT = 3.0


class WatcherState(enum.Enum):
    IDLE = "idle"  #: session unlocked, waiting for a lock (camera closed, no CPU)
    WATCHING = "watching"  #: session locked, waiting before the next attempt (camera closed)
    AUTHENTICATING = "authenticating"  #: an attempt runs (camera open)
    UNLOCKED = "unlocked"  #: face recognised, the unlock action was performed
    PAUSED = "paused"  #: locked, not trying: lid closed, display off, locked out, tries used up
    ERROR = "error"  #: an attempt cannot work (no template, ...) or the unlock failed


@dataclass(frozen=True)
class WatcherEvent:
    """One change of the watcher's state. ``attempt``: attempts made during this lock;
    ``status``: the outcome of the attempt that just ended, if any; ``time``: the watcher's
    clock."""

    state: WatcherState
    detail: str = ""
    status: AuthStatus | None = None
    attempt: int = 0
    time: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.state.value,
            "detail": self.detail,
            "status": None if self.status is None else self.status.name.lower(),
            "attempt": self.attempt,
            "time": round(self.time, 3),
        }


def _default_lid() -> str | None:
    return camera_pointless()


class Watcher:
    """Watch ``backend`` and run ``run_attempt`` while the session is locked (see the module
    docstring). ``lid``: returns why an attempt is pointless now (``"lid closed (...)"``,
    ``"display off (...)"``; default :func:`~faceunlock.unlock.lockstate.camera_pointless`)
    or None; asked before every attempt, and every ``lid_poll`` s while it gives a reason.
    ``clock``: monotonic seconds, for event times and waits. ``on_event``: a first
    subscriber. ``confirm_timeout``: seconds the lock screen has to confirm an unlock, per
    unlock method."""

    def __init__(
        self,
        backend: LockBackend,
        run_attempt: RunAttempt,
        *,
        retry_interval: float = 2.0,
        max_interval: float = 30.0,
        max_attempts: int | None = 10,
        lid: Callable[[], str | None] = _default_lid,
        lid_poll: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[WatcherEvent], None] | None = None,
        confirm_timeout: float = CONFIRM_TIMEOUT,
    ) -> None:
        if retry_interval <= 0 or max_interval < retry_interval:
            raise ValueError("need 0 < retry_interval <= max_interval")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None: no limit)")
        self.backend = backend
        self.run_attempt = run_attempt
        self.retry_interval = retry_interval
        self.max_interval = max_interval
        self.max_attempts = max_attempts
        self.lid = lid
        self.lid_poll = lid_poll
        self.clock = clock
        self.confirm_timeout = confirm_timeout
        self._subscribers: list[Callable[[WatcherEvent], None]] = []
        if on_event is not None:
            self._subscribers.append(on_event)
        self._stop = threading.Event()
        self._unlocked = False  # an UNLOCKED event arrived during this lock
        self._attempt_error = ""  # what an attempt raised, for the event detail
        self.state = WatcherState.IDLE
        self.attempts = 0  # attempts during the current (or last) lock

    # ------------------------------------------------------------------ public API
    def subscribe(self, callback: Callable[[WatcherEvent], None]) -> None:
        """Call ``callback(event)`` on every change of state (on the watcher's thread)."""
        self._subscribers.append(callback)

    def stop(self) -> None:
        """Ask :meth:`run` to return soon (thread- and signal-handler-safe): a running attempt
        stops at its next frame, a wait returns at once."""
        self._stop.set()
        self.backend.wake()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, once: bool = False) -> None:
        """Watch until :meth:`stop` (or, with ``once``, until one lock has ended: unlocked by
        face or password). :class:`~faceunlock.errors.WatcherError` (the bus went away) is
        reported as an ``error`` event and raised."""
        try:
            if self.backend.is_locked():
                self._locked_period()
                if once:
                    return
            while not self.stopping:
                self._emit(WatcherState.IDLE, f"session unlocked; watching {self.backend.name}")
                release_memory()  # the attempt's buffers: idle RSS is the models, not frames
                ev = self.backend.wait_event(None)
                if ev is LockEvent.LOCKED and not self.stopping:
                    self._locked_period()
                    if once:
                        return
        except WatcherError as e:
            self._emit(WatcherState.ERROR, str(e))
            raise

    # ------------------------------------------------------------------ internals
    def _emit(
        self, state: WatcherState, detail: str = "", status: AuthStatus | None = None
    ) -> None:
        self.state = state
        ev = WatcherEvent(state, detail, status, self.attempts, self.clock())
        log.debug("watcher: %s", ev)
        for cb in list(self._subscribers):
            try:
                cb(ev)
            except Exception:  # a broken subscriber must not stop the watcher
                log.exception("watcher event subscriber %r failed", cb)

    def _wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: until unlocked or stopped); True when the
        session was unlocked (before or during the wait) or the watcher is stopping."""
        deadline = None if timeout is None else self.clock() + timeout
        while not (self._unlocked or self.stopping):
            left = None if deadline is None else deadline - self.clock()
            if left is not None and left <= 0:
                return False
            if self.backend.wait_event(left) is LockEvent.UNLOCKED:
                self._unlocked = True
        return True

    def _should_stop(self) -> bool:
        """Polled by the attempt between frames: the session was unlocked, or stop()."""
        if self.stopping or self._unlocked:
            return True
        while (ev := self.backend.wait_event(0)) is not None:
            if ev is LockEvent.UNLOCKED:  # later events (a new lock) stay queued
                self._unlocked = True
                break
        return self._unlocked

    def _attempt(self) -> AuthStatus:
        try:
            return AuthStatus(self.run_attempt(self._should_stop))
        except WatcherError:
            raise
        except Exception as e:
            log.exception("face attempt failed")
            self._attempt_error = f"{type(e).__name__}: {e}"
            return AuthStatus.ERROR

    def _detail(self, status: AuthStatus) -> str:
        msg = getattr(self.run_attempt, "message", "") or self._attempt_error
        return msg or status.name.lower().replace("_", " ")

    def _locked_period(self) -> None:
        """From a lock until the session is unlocked (by face or otherwise) or stop()."""
        self._unlocked = False
        self.attempts = 0
        delay = self.retry_interval
        while not (self._unlocked or self.stopping):
            why = self.lid()
            if why is not None:
                self._emit(WatcherState.PAUSED, f"{why}; not using the camera")
                self._wait(self.lid_poll)
                continue
            self._attempt_error = ""
            self._emit(WatcherState.AUTHENTICATING, f"attempt {self.attempts + 1}")
            status = self._attempt()
            self.attempts += 1
            if self._unlocked or self.stopping:
                break
            if status == AuthStatus.OK:
                if self._unlock():
                    return
                if self._unlocked or self.stopping:
                    break
                # a failed unlock (reported by _unlock): retried like a failed attempt
                status = AuthStatus.UNLOCK_FAILED
                detail = "face recognised, but the lock screen stayed locked"
            else:
                detail = self._detail(status)
            used_up = self.max_attempts is not None and self.attempts >= self.max_attempts
            if status in FINAL or used_up:
                if status not in FINAL:
                    detail = f"{detail}; {self.attempts} attempts made, type your password"
                error = status in FINAL and status != AuthStatus.LOCKED_OUT
                self._emit(WatcherState.ERROR if error else WatcherState.PAUSED, detail, status)
                self._wait(None)
                break
            self._emit(WatcherState.WATCHING, f"{detail}; next attempt in {delay:g} s", status)
            if self._wait(delay):
                break
            delay = min(delay * 2, self.max_interval)
        if self.stopping and not self._unlocked:
            return
        self._emit(WatcherState.IDLE, "session unlocked (not by face)")

    def _confirmed(self) -> bool:
        """Whether the lock screen's own state says unlocked within ``confirm_timeout``."""
        if self._wait(self.confirm_timeout):
            return self._unlocked
        return not self.backend.is_locked()

    def _unlock(self) -> bool:
        """Unlock through each of the backend's methods in turn until the lock screen confirms
        it. True: unlocked (by this, or by the password meanwhile). False: a failed unlock,
        already reported (an ``error`` event with status ``UNLOCK_FAILED``)."""
        problems: list[str] = []
        for method in self.backend.unlock_methods():
            try:
                self.backend.unlock(method)
            except WatcherError as e:
                log.warning("unlock via %s failed: %s", method, e)
                problems.append(str(e))
                continue
            if self._confirmed():
                how = getattr(self.backend, "confirmed_by", "") or "the lock screen"
                self._emit(
                    WatcherState.UNLOCKED,
                    f"face recognised; unlocked via {method} (confirmed by {how})",
                )
                return True
            if self.stopping:
                return False
            problems.append(f"{method}: still locked {self.confirm_timeout:g} s after the call")
        detail = "face recognised, but the lock screen did not unlock: " + "; ".join(problems)
        log.warning("%s", detail)
        self._emit(WatcherState.ERROR, detail, AuthStatus.UNLOCK_FAILED)
        return False


class AuthAttempt:
    """A :data:`RunAttempt` doing one real attempt with
    :func:`faceunlock.app.service.authenticate_user`: a fresh frame source each time (the
    camera is open only during the attempt). ``cfg``: a config, or a function returning one
    (re-read at every attempt, so ``faceunlock disable`` applies at the next lock).
    ``message`` / ``result``: the last attempt's message and result."""

    def __init__(
        self,
        store: TemplateStore,
        user: str,
        cfg: Config | Callable[[], Config],
        source: str | None = None,
        *,
        timeout: float | None = None,
        state_dir: Path | None = None,
        on_frame: Callable[[FrameResult], None] | None = None,
    ) -> None:
        self.store = store
        self.user = user
        self.cfg = cfg
        self.source = source
        self.timeout = timeout
        self.state_dir = state_dir
        self.on_frame = on_frame
        self.message = ""
        self.result: AuthResult | None = None

    def config(self) -> Config:
        return self.cfg() if callable(self.cfg) else self.cfg

    def __call__(self, should_stop: Callable[[], bool]) -> AuthStatus:
        from faceunlock.app import service

        self.result = None
        try:
            cfg = self.config()
            res = service.authenticate_user(
                self.store,
                self.user,
                cfg,
                service.source_for(cfg, self.source),
                timeout=self.timeout,
                pipe=service.pipeline_for(cfg),
                on_frame=self.on_frame,
                should_stop=should_stop,
                state_dir=self.state_dir,
            )
        except TemplateError as e:
            self.message = str(e)
            return (
                e.status
                if e.status in (AuthStatus.NO_TEMPLATE, AuthStatus.KEYRING_ERROR)
                else AuthStatus.TEMPLATE_ERROR
            )
        except FaceUnlockError as e:
            self.message = str(e)
            return e.status
        self.result = res
        self.message = res.message
        return res.status

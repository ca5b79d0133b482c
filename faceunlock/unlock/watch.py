"""``faceunlock watch``: the lock-screen watcher for one user, run until stopped.

Loads the models up front (not at the first lock), connects to the lock-state service, runs
:class:`~faceunlock.unlock.watcher.Watcher` with a real :class:`AuthAttempt` per lock, stops
cleanly on SIGTERM (systemd), and shows the failures that matter as desktop notifications.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from faceunlock.config import Config, load_config
from faceunlock.engine.templates import TemplateStore
from faceunlock.errors import FaceUnlockError, TemplateNotFoundError, plain_message
from faceunlock.unlock.lockstate import detect_backend
from faceunlock.unlock.notify import (
    FileRateLimiter,
    Notifier,
    error_icon,
    notice_for,
    watcher_stopped_notice,
)
from faceunlock.unlock.watcher import AuthAttempt, Watcher, WatcherEvent


def desktop_notifier() -> Notifier:
    """The tray's desktop notifications; the repeat limit survives systemd's restarts."""
    return Notifier(icon=error_icon(), limiter=FileRateLimiter())


def watch(
    store: TemplateStore,
    user: str,
    cfg: Config,
    backend: str,
    source: str | None,
    *,
    once: bool = False,
    on_event: Callable[[WatcherEvent], None] | None = None,
    notifier: Callable[[], Notifier] | None = desktop_notifier,
) -> None:
    """Watch the lock screen (``backend``: a ``watcher.backend`` value) and unlock it when
    ``user``'s face (template in ``store``) is seen on ``source`` (None: ``camera.source``).
    ``cfg`` chooses the models loaded up front; each attempt re-reads the config. ``on_event``
    sees every event; the notifier made by ``notifier`` (None: no notifications) shows those
    that need a notice, and that the watcher could not start or stopped on an error (which
    is then raised). Returns after one cycle with ``once``, else on SIGTERM."""
    from faceunlock.app import service

    if not store.exists(user):
        raise TemplateNotFoundError(user, store.path(user))
    shown = notifier() if notifier is not None else None

    def show(ev: WatcherEvent) -> None:
        if on_event is not None:
            on_event(ev)
        notice = notice_for(ev.status, ev.detail)
        if shown is not None and notice is not None:
            shown.notify(notice)

    try:
        service.pipeline_for(cfg)  # load the models now, not at the first lock
        with detect_backend(backend) as lock_state:
            watcher = Watcher(
                lock_state, AuthAttempt(store, user, load_config, source), on_event=show
            )
            old = signal.signal(signal.SIGTERM, lambda *_: watcher.stop())
            try:
                watcher.run(once=once)
            finally:
                signal.signal(signal.SIGTERM, old)
    except FaceUnlockError as e:  # could not start, or stopped on an error
        if shown is not None:
            shown.notify(watcher_stopped_notice(plain_message(e)))
        raise

"""The tray's failure notifications against python-dbusmock's ``notification_daemon``
template on a REAL private session bus (``dbus-daemon``), with the real watcher: a locked
stand-in screen saver, real authentication attempts on a camera that does not exist.

The bus is the ``notify_bus`` fixture (tests/conftest.py, tests/fakes/notify_daemon.py),
shared with the ``faceunlock watch`` tests. Skipped when dbus-daemon is missing (Debian:
``apt-get install dbus``) or ``/usr/bin/python3`` cannot import dbusmock
(``apt-get install python3-dbusmock``); ``scripts/setup.sh --dev`` installs both.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from faceunlock.config import Config, config_set
from faceunlock.engine.templates import TemplateStore
from faceunlock.errors import AuthStatus, WatcherError
from faceunlock.ui.tray import TrayIcon
from faceunlock.ui.watch import WatcherController
from faceunlock.unlock.lockstate import LockBackend, ScreenSaverBackend
from faceunlock.unlock.watcher import AuthAttempt, RunAttempt, WatcherEvent
from tests.fakes.notify_daemon import SCREENSAVER, NotifyBus, enrol_random

USER = "alice"
NO_CAMERA = "/dev/video99"


def _enrolled(store: TemplateStore, cfg: Config) -> None:
    enrol_random(store, cfg, USER)


def _no_lid() -> str | None:
    return None


@pytest.mark.slow
def test_camera_error_at_the_lock_screen_is_notified_once(
    qtbot: QtBot, notify_bus: NotifyBus, store: TemplateStore, tmp_path: Path
) -> None:
    cfg = config_set(Config(), "camera.source", NO_CAMERA)
    _enrolled(store, cfg)

    def backend() -> LockBackend:
        return ScreenSaverBackend(SCREENSAVER, notify_bus.address)

    def attempt() -> RunAttempt:
        return AuthAttempt(store, USER, cfg, NO_CAMERA, state_dir=tmp_path)

    ctl = WatcherController(
        store,
        cfg,
        USER,
        backend_factory=backend,
        attempt_factory=attempt,
        watcher_kw={"lid": _no_lid, "retry_interval": 0.1, "max_interval": 0.2},
    )
    tray = TrayIcon(store, cfg, USER, dialog_factory=lambda name: None, controller=ctl)
    failed: list[WatcherEvent] = []
    # connected after the tray's own slot: an event in this list has reached the tray
    ctl.watcher_event.connect(
        lambda ev: failed.append(ev) if ev.status == AuthStatus.CAMERA_ERROR else None
    )
    try:
        tray.show()  # the session is locked: the watcher tries at once, and fails
        qtbot.waitUntil(lambda: len(notify_bus.notifications()) >= 1, timeout=60_000)
        (note,) = notify_bus.notifications()
        assert note["app"] == "FaceUnlock"
        assert note["summary"] == "Face unlock: no camera found"
        assert note["body"] == (
            "No camera was found — is it plugged in? Type your password to unlock."
        )
        assert note["hints"]["urgency"] == 1
        assert tray.state == "watching" and "no camera at" in tray.detail
        # the camera keeps failing at every retry: still one notification
        qtbot.waitUntil(lambda: len(failed) >= 4, timeout=60_000)
        assert len(notify_bus.notifications()) == 1
        assert [n.kind for n in tray.notifier.shown] == ["camera-missing"]
    finally:
        tray.hide()
        tray.deleteLater()
    assert not ctl.running


def test_watcher_that_cannot_start_is_notified(
    qtbot: QtBot, notify_bus: NotifyBus, store: TemplateStore
) -> None:
    def no_backend() -> LockBackend:
        raise WatcherError("no lock-screen service to watch: nothing on this bus")

    cfg = Config()
    ctl = WatcherController(store, cfg, USER, backend_factory=no_backend)
    tray = TrayIcon(store, cfg, USER, dialog_factory=lambda name: None, controller=ctl)
    try:
        tray.show()
        qtbot.waitUntil(lambda: len(notify_bus.notifications()) >= 1, timeout=30_000)
        (note,) = notify_bus.notifications()
        assert note["summary"] == "Face unlock stopped"
        assert note["body"] == (
            "There is no lock-screen service to watch in this session. Face unlock of the lock "
            "screen needs GNOME Shell, the MATE screensaver, KDE, Xfce or systemd-logind. Your "
            "password still works."
        )
        assert note["hints"]["urgency"] == 2
        assert tray.state == "error"
    finally:
        tray.hide()
        tray.deleteLater()

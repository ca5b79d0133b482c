"""The tray's failure notifications against python-dbusmock's ``notification_daemon``
template on a REAL private session bus (``dbus-daemon``), with the real watcher: a locked
stand-in screen saver, real authentication attempts on a camera that does not exist.

Skipped when dbus-daemon is missing (Debian: ``apt-get install dbus``) or ``/usr/bin/python3``
cannot import dbusmock (``apt-get install python3-dbusmock``); ``scripts/setup.sh --dev``
installs both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jeepney import DBusAddress, MessageType, new_method_call
from pytestqt.qtbot import QtBot

from faceunlock.config import Config, config_set
from faceunlock.engine import service
from faceunlock.engine.templates import Anchor, Template, TemplateStore
from faceunlock.errors import AuthStatus, WatcherError
from faceunlock.ui.tray import TrayIcon
from faceunlock.ui.watch import WatcherController
from faceunlock.unlock.lockstate import LockBackend, ScreenSaverBackend
from faceunlock.unlock.watcher import AuthAttempt, RunAttempt, WatcherEvent

SYSTEM_PYTHON = "/usr/bin/python3"
NOTIFICATIONS = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
MOCK_IFACE = "org.freedesktop.DBus.Mock"
SCREENSAVER = "org.freedesktop.ScreenSaver"
USER = "alice"
NO_CAMERA = "/dev/video99"


import fake_screensaver as fs  # noqa: E402  (tests/unlock is on pytest's pythonpath)


def _have_dbusmock() -> bool:
    return (
        os.access(SYSTEM_PYTHON, os.X_OK)
        and subprocess.run(
            [SYSTEM_PYTHON, "-c", "import dbusmock.templates.notification_daemon"],
            capture_output=True,
        ).returncode
        == 0
    )


class NotifyBus:
    """A private session bus with the dbusmock notification daemon and a locked stand-in
    ``org.freedesktop.ScreenSaver`` on it."""

    def __init__(self, root: Path) -> None:
        self.bus = fs.start_bus(root, "session")
        self.address: str = self.bus.address
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "DBUS_SESSION_BUS_ADDRESS": self.address,
        }
        log = root / "dbusmock.log"
        proc = subprocess.Popen(
            [SYSTEM_PYTHON, "-m", "dbusmock", "--template", "notification_daemon"],
            stdout=subprocess.DEVNULL,
            stderr=open(log, "wb"),  # noqa: SIM115
            env=env,
        )
        self.bus.standins.append(proc)
        try:
            fs.wait_until(
                lambda: proc.poll() is not None or self._owned(NOTIFICATIONS),
                "dbusmock notification_daemon",
                30,
            )
            if proc.poll() is not None:
                raise RuntimeError(f"dbusmock exited: {log.read_text(errors='replace')}")
            fs.start_standin(self.bus, "freedesktop", locked=True)
        except BaseException:
            self.close()
            raise

    def _call(
        self, addr: DBusAddress, method: str, sig: str | None = None, body: tuple[Any, ...] = ()
    ) -> tuple[Any, ...]:
        with fs.client(self.address) as conn:
            reply = conn.send_and_get_reply(new_method_call(addr, method, sig, body), timeout=10)
        if reply.header.message_type == MessageType.error:
            raise RuntimeError(f"{addr.interface}.{method}: {reply.body}")
        return tuple(reply.body)

    def _owned(self, name: str) -> bool:
        bus = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus")
        return bool(self._call(bus, "NameHasOwner", "s", (name,))[0])

    def notifications(self) -> list[dict[str, Any]]:
        """The Notify calls the mock received, oldest first."""
        calls = self._call(
            DBusAddress(NOTIFICATIONS_PATH, NOTIFICATIONS, MOCK_IFACE),
            "GetMethodCalls",
            "s",
            ("Notify",),
        )[0]
        out = []
        for _ts, args in calls:
            values = [v[1] if isinstance(v, tuple) and len(v) == 2 else v for v in args]
            app, _replaces, icon, summary, body, _actions, hints, _timeout = values
            hints = {k: v[1] for k, v in hints.items()}  # variants: (signature, value)
            out.append({"app": app, "summary": summary, "body": body, "hints": hints, "icon": icon})
        return out

    def close(self) -> None:
        self.bus.close()


@pytest.fixture()
def notify_bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyBus]:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon not installed (Debian: apt-get install dbus)")
    if not _have_dbusmock():
        pytest.skip(f"{SYSTEM_PYTHON} cannot import dbusmock (apt-get install python3-dbusmock)")
    root = Path(tempfile.mkdtemp(prefix="fu-nt-"))  # short: unix socket paths max 108 bytes
    try:
        b = NotifyBus(root)
        # the tray's default notifier talks to "the session bus": this one
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", b.address)
        try:
            yield b
        finally:
            b.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _enrolled(store: TemplateStore, cfg: Config) -> None:
    """A template of random anchors made with the real encoder's sha (no camera needed)."""
    rng = np.random.default_rng(0)
    t = Template(user=USER, model_sha256=service.pipeline_for(cfg).encoder.sha256)
    t.add_anchors(
        Anchor.new(rng.normal(size=128).astype(np.float32), np.zeros((64, 64, 3), np.uint8))
        for _ in range(3)
    )
    store.save(t)


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
            "No lock-screen service to watch: nothing on this bus. Your password still works."
        )
        assert note["hints"]["urgency"] == 2
        assert tray.state == "error"
    finally:
        tray.hide()
        tray.deleteLater()

"""python-dbusmock's ``notification_daemon`` template on a REAL private session bus
(``dbus-daemon``), for the tests of the desktop notifications: the tray's
(tests/ui/test_ui_notify.py) and ``faceunlock watch``'s (tests/unlock/test_watch_notify.py).
The ``notify_bus`` fixture (tests/conftest.py) starts one per test.

The mock runs under ``/usr/bin/python3`` (Debian's python3-dbusmock); a locked stand-in
``org.freedesktop.ScreenSaver`` (:mod:`fake_screensaver`) shares the bus.
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
from jeepney import DBusAddress

from faceunlock.config import Config
from faceunlock.engine import service
from faceunlock.engine.templates import Anchor, Template, TemplateStore
from tests.fakes import fake_screensaver as fs

SYSTEM_PYTHON = "/usr/bin/python3"
NOTIFICATIONS = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
MOCK_IFACE = "org.freedesktop.DBus.Mock"
SCREENSAVER = "org.freedesktop.ScreenSaver"


def have_dbusmock() -> bool:
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
        return fs.call(self.address, addr, method, sig, body)

    def _owned(self, name: str) -> bool:
        return fs.name_has_owner(self.address, name)

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


def notify_bus_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyBus]:
    """Start a :class:`NotifyBus` and make it "the session bus" ($DBUS_SESSION_BUS_ADDRESS)
    until the generator is closed; skips when dbus-daemon or dbusmock is missing."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon not installed (Debian: apt-get install dbus)")
    if not have_dbusmock():
        pytest.skip(f"{SYSTEM_PYTHON} cannot import dbusmock (apt-get install python3-dbusmock)")
    root = Path(tempfile.mkdtemp(prefix="fu-nt-"))  # short: unix socket paths max 108 bytes
    try:
        b = NotifyBus(root)
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", b.address)
        try:
            yield b
        finally:
            b.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def enrol_random(store: TemplateStore, cfg: Config, user: str) -> None:
    """A template of random anchors made with the real encoder's sha (no camera needed)."""
    rng = np.random.default_rng(0)
    t = Template(user=user, model_sha256=service.pipeline_for(cfg).encoder.sha256)
    t.add_anchors(
        Anchor.new(rng.normal(size=128).astype(np.float32), np.zeros((64, 64, 3), np.uint8))
        for _ in range(3)
    )
    store.save(t)

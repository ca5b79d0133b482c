"""``faceunlock watch`` sends the tray's desktop notifications: against python-dbusmock's
``notification_daemon`` on a REAL private session bus (the ``notify_bus`` fixture, shared
with tests/ui/test_ui_notify.py), with the real watcher, a locked stand-in screen saver and
real authentication attempts on a camera that does not exist. The repeat limit is kept in
the user's state directory, so a watcher restarted by systemd does not repeat itself."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from faceunlock import cli
from faceunlock.config import Config, save_config
from faceunlock.engine.templates import StaticKeyProvider, TemplateStore
from faceunlock.errors import AuthStatus
from faceunlock.paths import user_state_dir
from tests.fakes import fake_screensaver as fs
from tests.fakes.notify_daemon import NotifyBus, enrol_random

USER = "alice"
NO_CAMERA = "/dev/video99"


class Lines:
    """Stands in for sys.stdout: the lines the watcher prints, readable from another
    thread while it runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text = ""

    def write(self, s: str) -> int:
        with self._lock:
            self._text += s
        return len(s)

    def flush(self) -> None:
        pass

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            text = self._text
        return [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]


def _watch_once(
    bus: NotifyBus, monkeypatch: pytest.MonkeyPatch, until: Any, *extra: str
) -> tuple[int, list[dict[str, Any]]]:
    """``faceunlock watch --once --json`` on the locked stand-in; once ``until(events)``
    holds, the stand-in plays the user typing the password (the lock ends, --once returns)."""
    out = Lines()
    monkeypatch.setattr("sys.stdout", out)

    def driver() -> None:
        try:
            fs.wait_until(lambda: until(out.events()), "the watcher's attempts", 90)
        finally:
            fs.control(bus.address, "freedesktop", "PasswordUnlock")

    t = threading.Thread(target=driver, daemon=True)
    t.start()
    argv = ["watch", "--user", USER, "--backend", "freedesktop", "--source", NO_CAMERA]
    rc = cli.main([*argv, "--once", "--json", *extra])
    t.join(30)
    return rc, out.events()


def _camera_errors(events: list[dict[str, Any]]) -> int:
    return sum(e["status"] == "camera_error" for e in events)


@pytest.fixture()
def enrolled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TemplateStore:
    """alice enrolled in a static-key store the CLI uses; a config file of defaults."""
    store = TemplateStore(tmp_path / "templates", StaticKeyProvider(os.urandom(32)))
    enrol_random(store, Config(), USER)
    monkeypatch.setattr(cli, "_store", lambda: store)
    monkeypatch.setenv("FACEUNLOCK_CONFIG", str(save_config(Config(), tmp_path / "c.toml")))
    return store


@pytest.mark.slow
def test_watch_notifies_a_missing_camera_once_across_restarts(
    notify_bus: NotifyBus, enrolled: TemplateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the camera fails at every attempt: one notification, however many attempts
    rc, events = _watch_once(notify_bus, monkeypatch, lambda ev: _camera_errors(ev) >= 2)
    assert rc == 0
    assert _camera_errors(events) >= 2
    (note,) = notify_bus.notifications()
    assert note["app"] == "FaceUnlock"
    assert note["summary"] == "Face unlock: no camera found"
    assert note["body"] == "No camera was found — is it plugged in? Type your password to unlock."
    assert note["hints"]["urgency"] == 1
    assert note["icon"].endswith("error.svg")
    assert "camera-missing" in json.loads((user_state_dir() / "notified.json").read_text())
    # systemd restarts the watcher, the screen locks again, the camera still fails: the
    # limit was kept in the state directory, so still one notification
    fs.control(notify_bus.address, "freedesktop", "Lock")
    rc, events = _watch_once(notify_bus, monkeypatch, lambda ev: _camera_errors(ev) >= 1)
    assert rc == 0 and _camera_errors(events) >= 1
    assert len(notify_bus.notifications()) == 1


@pytest.mark.slow
def test_watch_no_notify_sends_none(
    notify_bus: NotifyBus, enrolled: TemplateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rc, events = _watch_once(
        notify_bus, monkeypatch, lambda ev: _camera_errors(ev) >= 1, "--no-notify"
    )
    assert rc == 0 and _camera_errors(events) >= 1
    assert notify_bus.notifications() == []


def test_watch_that_cannot_start_is_notified(
    notify_bus: NotifyBus,
    enrolled: TemplateStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No GNOME screen saver on this bus: the watcher cannot start; the exit code says so
    (systemd restarts it) and the person is told once."""
    rc = cli.main(["watch", "--user", USER, "--backend", "gnome"])
    assert rc == AuthStatus.NO_LOCK_SERVICE == 25  # not the generic 1
    err = capsys.readouterr().err
    assert "faceunlock: error: org.gnome.ScreenSaver has no owner" in err
    (note,) = notify_bus.notifications()
    assert note["summary"] == "Face unlock stopped"
    # plain words for the person; the D-Bus details stay in the log (stderr above)
    assert note["body"].startswith("Face unlock lost contact with the lock screen")
    assert "D-Bus" not in note["body"] and "Errno" not in note["body"]
    assert note["body"].endswith("Your password still works.")
    assert note["hints"]["urgency"] == 2

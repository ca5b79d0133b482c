"""The tray drives the lock-screen watcher (WatcherController) against a stand-in
org.freedesktop.ScreenSaver on a REAL private D-Bus bus, with real authentications on the
woman's webcam clip. The bus test is skipped when ``dbus-daemon`` is missing (Debian:
``apt-get install dbus``)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from faceunlock.config import Config, config_set
from faceunlock.engine.templates import TemplateStore
from faceunlock.errors import WatcherError
from faceunlock.ui.tray import TrayIcon
from faceunlock.ui.watch import WatcherController
from faceunlock.unlock.lockstate import LockBackend, ScreenSaverBackend
from faceunlock.unlock.watcher import AuthAttempt, RunAttempt, WatcherEvent

SCREENSAVER = "org.freedesktop.ScreenSaver"
USER = "alice"


from tests.fakes import fake_screensaver as fs  # noqa: E402
from tests.fakes.clip_material import EnrolledClips, watcher_config  # noqa: E402


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory, clips_dir: Path) -> EnrolledClips:
    return EnrolledClips(tmp_path_factory.mktemp("uiwatch"), clips_dir, USER)


@pytest.fixture()
def bus() -> Iterator[object]:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon not installed (Debian: apt-get install dbus)")
    root = Path(tempfile.mkdtemp(prefix="fu-ui-"))  # short: unix socket paths max 108 bytes
    b = fs.start_bus(root, "session")
    try:
        fs.start_standin(b, "freedesktop")
        yield b
    finally:
        b.close()
        shutil.rmtree(root, ignore_errors=True)


def _no_lid() -> str | None:
    return None


def _trigger(tray: TrayIcon, *path: str) -> None:
    """Trigger a menu entry by its text, through submenus (as a click would)."""
    tray.menu.aboutToShow.emit()
    menu = tray.menu
    for i, text in enumerate(path):
        act = next(a for a in menu.actions() if a.text() == text)
        if i < len(path) - 1:
            sub = act.menu()
            assert sub is not None
            menu = sub
        else:
            act.trigger()


@pytest.mark.slow
def test_tray_runs_the_watcher_and_face_unlocks(
    qtbot: QtBot, bus: object, enrolled: EnrolledClips, tmp_path: Path
) -> None:
    address = str(bus.address)  # type: ignore[attr-defined]
    cfg = watcher_config()
    assert cfg.watcher.enabled

    def backend() -> LockBackend:
        return ScreenSaverBackend(SCREENSAVER, address)

    def attempt() -> RunAttempt:
        return AuthAttempt(enrolled.store, USER, cfg, str(enrolled.genuine), state_dir=tmp_path)

    ctl = WatcherController(
        enrolled.store,
        cfg,
        USER,
        backend_factory=backend,
        attempt_factory=attempt,
        watcher_kw={"lid": _no_lid, "retry_interval": 0.2, "max_interval": 1.0},
    )
    tray = TrayIcon(enrolled.store, cfg, USER, dialog_factory=lambda name: None, controller=ctl)
    history: list[str] = []
    events: list[WatcherEvent] = []
    tray.stateChanged.connect(history.append)
    ctl.watcher_event.connect(events.append)
    try:
        assert not ctl.running
        tray.show()
        assert ctl.running
        assert tray.state == "watching"
        # the watcher listens (it asked the lock state, and said so): lock the session
        qtbot.waitUntil(lambda: any(e.state.value == "idle" for e in events), timeout=30_000)
        assert "GetActive" in [c for c, _ in fs.calls(address, "freedesktop")]
        assert tray.state == "watching"
        history.clear()
        fs.control(address, "freedesktop", "Lock")
        qtbot.waitUntil(lambda: "unlocked" in history, timeout=90_000)
        assert "authenticating" in history
        assert history.index("authenticating") < history.index("unlocked")
        assert ("SetActive", "(False,)") in fs.calls(address, "freedesktop")
        unlocked = next(e for e in events if e.state.value == "unlocked")
        assert "face recognised" in unlocked.detail

        # Pause: the watcher thread ends; Resume: it runs again
        thread = ctl._thread
        assert thread is not None
        _trigger(tray, "&Pause", "Until resumed")
        assert not ctl.running and thread.isFinished()
        assert tray.state == "paused" and tray.paused
        _trigger(tray, "&Pause", "&Resume")
        assert ctl.running and not tray.paused
        assert tray.state == "watching"
        n_idle = sum(e.state.value == "idle" for e in events)
        qtbot.waitUntil(
            lambda: sum(e.state.value == "idle" for e in events) > n_idle, timeout=30_000
        )

        # Quit: the watcher stops before the app is asked to quit
        with qtbot.waitSignal(tray.quitRequested, timeout=15_000):
            _trigger(tray, "&Quit")
        assert not ctl.running
    finally:
        tray.hide()
        tray.deleteLater()
    assert not ctl.running


def test_watcher_failure_puts_the_tray_in_error(qtbot: QtBot, store: TemplateStore) -> None:
    def no_backend() -> LockBackend:
        raise WatcherError("no lock-screen service to watch: nothing on this bus")

    cfg = Config()
    ctl = WatcherController(store, cfg, USER, backend_factory=no_backend)
    tray = TrayIcon(store, cfg, USER, dialog_factory=lambda name: None, controller=ctl)
    failures: list[str] = []
    ctl.failed.connect(failures.append)
    try:
        tray.show()
        qtbot.waitUntil(lambda: tray.state == "error", timeout=10_000)
        assert failures and "no lock-screen service" in failures[0]
        assert tray.detail == failures[0]
        qtbot.waitUntil(lambda: not ctl.running, timeout=10_000)
        # Pause then Resume tries again (and fails again)
        tray.pause(None)
        assert tray.state == "paused"
        tray.resume()
        qtbot.waitUntil(lambda: len(failures) == 2, timeout=10_000)
        assert tray.state == "error"
    finally:
        tray.hide()
        tray.deleteLater()


def test_disabled_watcher_is_not_started(qtbot: QtBot, store: TemplateStore) -> None:
    cfg = config_set(Config(), "watcher.enabled", "false")
    started: list[bool] = []

    def backend() -> LockBackend:
        started.append(True)
        raise WatcherError("should not run")

    ctl = WatcherController(store, cfg, USER, backend_factory=backend)
    tray = TrayIcon(store, cfg, USER, dialog_factory=lambda name: None, controller=ctl)
    try:
        tray.show()
        assert not ctl.running and tray.state == "idle"
        qtbot.wait(100)
        assert started == []
    finally:
        tray.hide()
        tray.deleteLater()

"""Tray menu, pause, settings validation, the dialogs and the single-instance guard."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtWidgets import QApplication, QDialog
from pytestqt.qtbot import QtBot

from faceunlock.app import service
from faceunlock.config import Config, load_config
from faceunlock.engine.templates import Anchor, Template, TemplateStore
from faceunlock.errors import AuthStatus, CameraBusyError
from faceunlock.ui import app as gui_app
from faceunlock.ui.dialogs import RecalibrateDialog, RecognitionTestDialog, SettingsDialog
from faceunlock.ui.tray import STATES, TrayIcon, icons_dir, state_icon
from faceunlock.ui.wizard import EnrolWizard
from faceunlock.unlock.notify import Notice, Notifier
from faceunlock.unlock.watcher import WatcherEvent, WatcherState

USER = "alice"


def _enrolled(store: TemplateStore, cfg: Config, n: int = 4) -> Template:
    """A template of random anchors made with the real encoder's sha (no camera needed)."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=128).astype(np.float32) * 0.1
    t = Template(user=USER, model_sha256=service.pipeline_for(cfg).encoder.sha256)
    t.add_anchors(
        Anchor.new(
            base + rng.normal(size=128).astype(np.float32) * 0.02, np.zeros((64, 64, 3), np.uint8)
        )
        for _ in range(n)
    )
    t.threshold = 0.46
    store.save(t)
    return t


@pytest.fixture()
def opened() -> list[str]:
    return []


@pytest.fixture()
def tray(
    store: TemplateStore, cfg: Config, tmp_path: Path, opened: list[str]
) -> Iterator[TrayIcon]:
    t = TrayIcon(
        store,
        cfg,
        USER,
        config_path=tmp_path / "config.toml",
        dialog_factory=lambda name: opened.append(name),
    )
    yield t
    t.hide()
    t.deleteLater()


def test_icons_exist_and_load(qapp: QApplication) -> None:
    for s in STATES:
        assert (icons_dir() / f"{s}.svg").is_file()
        assert not state_icon(s).pixmap(16).isNull()


def test_menu_rebuilds_with_expected_actions(
    tray: TrayIcon, store: TemplateStore, cfg: Config, opened: list[str]
) -> None:
    assert tray.action_texts()[0] == "Not enrolled"
    assert "&Enrol…" in tray.action_texts()
    _enrolled(store, cfg)
    tray.menu.aboutToShow.emit()
    texts = tray.action_texts()
    assert texts == [
        "Watching the lock screen",
        "&Test recognition…",
        "&Recalibrate threshold…",
        "&Add appearance…",
        "Re&place my face…",
        "&Pause",
        "&Settings…",
        "&About",
        "&Quit",
    ]
    assert not tray.menu.actions()[0].isEnabled()  # the status line is not clickable
    assert "&Debug" not in texts  # hidden unless FACEUNLOCK_DEBUG=1
    by_text = {a.text(): a for a in tray.menu.actions()}
    by_text["&Test recognition…"].trigger()
    by_text["&Settings…"].trigger()
    by_text["Re&place my face…"].trigger()  # a separate action from adding an appearance
    assert opened == ["test", "settings", "replace"]


def test_pause_updates_status_line_and_resumes(
    tray: TrayIcon, store: TemplateStore, cfg: Config
) -> None:
    _enrolled(store, cfg)
    pause_menu = next(a.menu() for a in tray.menu.actions() if a.text() == "&Pause")
    assert [a.text() for a in pause_menu.actions()] == [
        "For 15 minutes",
        "For 1 hour",
        "Until resumed",
    ]
    pause_menu.actions()[0].trigger()
    tray.menu.aboutToShow.emit()
    status = tray.action_texts()[0]
    until = time.strftime("%H:%M", time.localtime(time.time() + 15 * 60))
    assert status.startswith("Paused until ")
    assert (
        abs(int(status[-5:-3]) * 60 + int(status[-2:]) - (int(until[:2]) * 60 + int(until[3:])))
        % 1440
        <= 1
    )
    assert tray.state == "paused"
    pause_menu = next(a.menu() for a in tray.menu.actions() if a.text() == "&Pause")
    pause_menu.actions()[-1].trigger()  # until resumed
    tray.menu.aboutToShow.emit()
    assert tray.action_texts()[0] == "Paused until resumed"
    pause_menu = next(a.menu() for a in tray.menu.actions() if a.text() == "&Pause")
    assert pause_menu.actions()[0].text() == "&Resume"
    pause_menu.actions()[0].trigger()
    tray.menu.aboutToShow.emit()
    assert tray.action_texts()[0] == "Watching the lock screen"


def test_pause_timer_resumes(qtbot: QtBot, tray: TrayIcon) -> None:
    tray.pause(1)
    assert tray.paused
    qtbot.waitUntil(lambda: not tray.paused, timeout=5_000)
    assert tray.state == "watching"


def test_debug_menu_sets_state(store: TemplateStore, cfg: Config) -> None:
    t = TrayIcon(store, cfg, USER, debug=True)
    dbg = next(a.menu() for a in t.menu.actions() if a.text() == "&Debug")
    next(a for a in dbg.actions() if a.text() == "Set state: unlocked").trigger()
    assert t.state == "unlocked"
    assert t.toolTip().startswith("FaceUnlock")


def test_settings_rejects_bad_value_naming_the_key(
    qtbot: QtBot, cfg: Config, tmp_path: Path
) -> None:
    path = tmp_path / "settings.toml"
    d = SettingsDialog(cfg, path)
    qtbot.addWidget(d)
    d.timeout.setText("99")
    d.accept()
    assert d.result() != QDialog.DialogCode.Accepted
    assert "auth.timeout" in d.error.text() and "between" in d.error.text()
    assert not path.exists()
    d.timeout.setText("abc")
    d.accept()
    assert "auth.timeout" in d.error.text()
    d.source.setCurrentText("  ")
    d.timeout.setText("2.5")
    d.accept()
    assert "camera.source" in d.error.text()
    d.source.setCurrentText("1")
    d.level.setCurrentText("secure")
    d.snapshots.setChecked(True)
    d.accept()
    assert d.result() == QDialog.DialogCode.Accepted
    saved = load_config(path)
    assert saved.auth.timeout == 2.5
    assert saved.camera.source == "1"
    assert saved.auth.security_level == "secure"
    assert saved.auth.snapshots is True


def test_settings_photo_check_explains_each_level_and_saves_it(
    qtbot: QtBot, cfg: Config, tmp_path: Path
) -> None:
    """Settings shows the photo check (liveness.level) with the wizard's plain words for the
    chosen level, and saves a changed level."""
    from faceunlock.config import config_set
    from faceunlock.ui.widgets import LIVENESS_DESCRIPTIONS, LIVENESS_SHORT

    path = tmp_path / "photo-check.toml"
    d = SettingsDialog(config_set(cfg, "liveness.level", "passive"), path)
    qtbot.addWidget(d)
    assert d.liveness.currentData() == "passive"
    assert d.liveness_description.text() == LIVENESS_SHORT["passive"]
    assert "photo or a screen" in d.liveness_description.text()
    assert d.liveness_description.toolTip() == LIVENESS_DESCRIPTIONS["passive"]
    d.liveness.setCurrentIndex(d.liveness.findData("off"))
    assert "a photo or a phone picture of you can unlock" in d.liveness_description.text()
    assert "anyone who holds up a photo" in d.liveness.toolTip()
    d.accept()
    assert d.result() == QDialog.DialogCode.Accepted
    assert load_config(path).liveness.level == "off"
    assert d.config.liveness.level == "off"


def test_settings_from_the_menu_apply_to_the_tray(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    """The spec's Settings: camera, security level, timeout, watcher on/off, snapshots on/off,
    opened from the menu by the real window factory; saving applies to the running tray."""
    path = tmp_path / "tray-settings.toml"
    t = TrayIcon(store, cfg, USER, config_path=path)
    try:
        assert t.state == "watching"
        t.menu.aboutToShow.emit()
        next(a for a in t.menu.actions() if a.text() == "&Settings…").trigger()
        (d,) = t.windows
        assert isinstance(d, SettingsDialog)
        qtbot.addWidget(d)
        assert set(d.values()) == {
            "camera.source",
            "auth.security_level",
            "auth.timeout",
            "liveness.level",
            "watcher.enabled",
            "auth.snapshots",
        }
        d.watcher.setChecked(False)
        d.snapshots.setChecked(True)
        d.level.setCurrentText("secure")
        d.accept()
        assert not t.cfg.watcher.enabled and t.cfg.auth.snapshots
        assert t.cfg.auth.security_level == "secure"
        assert t.state == "idle"
        saved = load_config(path)
        assert saved.watcher.enabled is False and saved.auth.snapshots is True
    finally:
        t.hide()
        t.deleteLater()


def test_failures_that_matter_are_notified_once(
    monkeypatch: pytest.MonkeyPatch, store: TemplateStore, cfg: Config
) -> None:
    """Without a session bus the notices go to the fallback; ordinary misses make none."""
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    got: list[Notice] = []
    t = TrayIcon(store, cfg, USER, notifier=Notifier(fallback=got.append))
    busy = WatcherEvent(
        WatcherState.WATCHING,
        f"{CameraBusyError('/dev/video0', 'cheese pid 42')}; next attempt in 2 s",
        AuthStatus.CAMERA_ERROR,
        1,
    )
    t.on_watcher_event(busy)
    t.on_watcher_event(busy)  # again at the next attempt: not repeated
    t.on_watcher_event(WatcherEvent(WatcherState.WATCHING, "no match", AuthStatus.NO_MATCH, 2))
    t.on_watcher_event(
        WatcherEvent(WatcherState.PAUSED, "paused for 60 s", AuthStatus.LOCKED_OUT, 3)
    )
    t.flush_notifications()  # sent from a worker thread, in order
    assert [n.kind for n in got] == ["camera-busy", "locked-out"]
    assert got[0].body == (
        "The camera is busy — another app is using it. Type your password to unlock."
    )
    assert t.state == "paused"
    # the default notifier falls back to the icon's own message, on the GUI thread
    t2 = TrayIcon(store, cfg, USER)
    shown: list[Notice] = []
    t2.balloonRequested.connect(shown.append)
    assert t2.notifier.fallback is not None
    t2.notifier.fallback(got[1])
    assert shown == [got[1]]
    t2.show_balloon(got[1])


def test_recalibrate_dialog_saves_new_level(
    qtbot: QtBot, store: TemplateStore, cfg: Config
) -> None:
    _enrolled(store, cfg)
    d = RecalibrateDialog(store, cfg, USER)
    qtbot.addWidget(d)
    assert d.error.text() == ""
    d.panel.radios["convenient"].click()
    d.accept()
    t = store.load(USER)
    assert t.security_level == "convenient"
    assert t.threshold == pytest.approx(d.panel.choices["convenient"].threshold)


def test_test_dialog_without_template_says_so(
    qtbot: QtBot, store: TemplateStore, cfg: Config
) -> None:
    d = RecognitionTestDialog(store, cfg, USER, source_spec="0")
    qtbot.addWidget(d)
    assert "enrol" in d.error.text().lower() or "template" in d.error.text().lower()
    assert d.worker_thread is None


@pytest.mark.slow
def test_test_dialog_reports_distances(
    qtbot: QtBot, store: TemplateStore, cfg: Config, female_folder: Path
) -> None:
    _enrolled(store, cfg)
    d = RecognitionTestDialog(store, cfg, USER, source_spec=str(female_folder))
    qtbot.addWidget(d)
    qtbot.waitUntil(lambda: d.outcome is not None, timeout=60_000)
    assert d.result_label.text() == "Not recognised"  # random anchors are not her
    qtbot.waitUntil(lambda: not d.running, timeout=10_000)
    # closed during the next attempt: its camera stops and its thread ends
    d.start()
    thread = d.worker_thread
    assert thread is not None
    qtbot.waitUntil(lambda: d.packets > 0 and d.outcome is None, timeout=60_000)
    d.reject()
    assert not thread.is_running() and not d.running


def test_first_window_depends_on_template(qtbot: QtBot, store: TemplateStore, cfg: Config) -> None:
    w = gui_app.first_window(store, cfg, USER)
    assert isinstance(w, EnrolWizard)
    qtbot.addWidget(w)
    _enrolled(store, cfg)
    t = gui_app.first_window(store, cfg, USER)
    assert isinstance(t, TrayIcon)


def test_second_launch_asks_running_instance_and_exits(
    qtbot: QtBot, tmp_path: Path
) -> None:
    """A real second launch (another process) finds this process's instance, which brings a
    window to the front and answers with its title; the launch prints it and exits 0."""
    import os
    import subprocess
    import sys

    name = f"faceunlock-test-{time.monotonic_ns()}"
    running = gui_app.SingleInstance(name)
    running.raise_handler = lambda: "Some window"
    assert running.listen()
    env = {**os.environ, "FACEUNLOCK_INSTANCE": name, "QT_QPA_PLATFORM": "offscreen"}
    out = tmp_path / "out.txt"
    try:
        with qtbot.waitSignal(running.raiseRequested, timeout=60_000), out.open("w") as fo:
            proc = subprocess.Popen([sys.executable, "-m", "faceunlock"], env=env, stdout=fo,
                                    stderr=subprocess.STDOUT)
        assert proc.wait(60) == 0, out.read_text()
    finally:
        running.close()
    assert "already running: its window “Some window” is now in front" in out.read_text()
    # with nobody listening, no one answers
    assert gui_app.notify_running(name, timeout_ms=200) is None


def test_long_status_keeps_the_menu_narrow_and_words_plain(
    qtbot: QtBot, store: TemplateStore, cfg: Config
) -> None:
    """A watcher that cannot find a lock-screen service (its error carries the D-Bus details,
    ``[Errno 2]`` included): the menu stays within 480 px, and the status line, the tooltip and
    the balloon say what it means in plain words."""
    from faceunlock.errors import WatcherError, plain_message
    from faceunlock.unlock.notify import watcher_stopped_notice

    _enrolled(store, cfg)
    raw = WatcherError(
        "no lock-screen service to watch: cannot connect to the session bus: [Errno 2] No such "
        "file or directory: '/run/user/1000/bus'; neither org.gnome.ScreenSaver nor "
        "org.mate.ScreenSaver nor org.freedesktop.ScreenSaver has an owner on the session bus; "
        "logind: cannot connect to the system bus: [Errno 2] No such file or directory. Face "
        "unlock of the lock screen needs a desktop session with GNOME Shell, a MATE screensaver, "
        "a freedesktop ScreenSaver (KDE, Xfce, ...) or systemd-logind"
    )
    got: list[Notice] = []
    t = TrayIcon(store, cfg, USER, notifier=Notifier(fallback=got.append))
    try:
        message = plain_message(raw)
        t.set_state("error", message)
        t.menu.aboutToShow.emit()
        t.menu.popup(t.menu.pos())
        qtbot.waitExposed(t.menu)
        assert t.menu.width() <= 480
        assert t.menu.sizeHint().width() <= 480
        status = t.menu.actions()[0]
        assert status.text().endswith("…")
        assert status.toolTip() == t.status_text()
        for text in (status.toolTip(), t.toolTip()):
            assert "Errno" not in text and "bus" not in text
        assert "no lock-screen service" in t.toolTip()
        notice = watcher_stopped_notice(message)
        assert "Errno" not in notice.body and "/run/user" not in notice.body
    finally:
        t.menu.hide()
        t.deleteLater()

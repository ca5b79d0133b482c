"""The running tray follows the config file: a change made from outside (``faceunlock config
set``, an editor that replaces the file) becomes the running config, and a broken file is the
tray's error state until it is fixed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PyQt6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot

from faceunlock.config import Config, config_set, save_config, to_toml
from faceunlock.engine.templates import TemplateStore
from faceunlock.ui.config_watch import ConfigWatcher, broken_message
from faceunlock.ui.dialogs import RecognitionTestDialog
from faceunlock.ui.tray import TrayIcon
from faceunlock.unlock.notify import Notice, Notifier

USER = "alice"


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` the way editors and ``config set`` do: a new file renamed over the old."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture()
def notices() -> list[Notice]:
    return []


@pytest.fixture()
def watched_tray(
    store: TemplateStore, cfg: Config, tmp_path: Path, notices: list[Notice]
) -> Iterator[TrayIcon]:
    path = tmp_path / "config.toml"  # the cfg fixture's file
    t = TrayIcon(store, cfg, USER, config_path=path, notifier=Notifier(fallback=notices.append),
                 config_watcher=ConfigWatcher(path, delay_ms=50))
    yield t
    t.hide()
    t.deleteLater()


def test_a_config_set_from_outside_reaches_the_running_tray(
    qtbot: QtBot, watched_tray: TrayIcon, cfg: Config, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    assert watched_tray.config_watcher is not None
    assert str(path) in watched_tray.config_watcher.watched()
    assert watched_tray.cfg.camera.source != "1"
    replace_file(path, to_toml(config_set(cfg, "camera.source", "1")))
    qtbot.waitUntil(lambda: watched_tray.cfg.camera.source == "1", timeout=10_000)
    assert watched_tray.config_problem is None
    # the file is watched again after the rename: a second change arrives too
    replace_file(path, to_toml(config_set(config_set(cfg, "camera.source", "1"),
                                          "auth.timeout", "7")))
    qtbot.waitUntil(lambda: watched_tray.cfg.auth.timeout == 7, timeout=10_000)
    assert watched_tray.cfg.camera.source == "1"
    # Test then uses the new camera (there is no camera 1 here: it says so)
    d = watched_tray._open_dialog("test")
    assert isinstance(d, RecognitionTestDialog)
    qtbot.addWidget(d)
    try:
        assert d.source_spec == "1"
    finally:
        d.done(QDialog.DialogCode.Rejected)


def test_a_broken_config_is_the_error_state_until_it_is_fixed(
    qtbot: QtBot, watched_tray: TrayIcon, cfg: Config, tmp_path: Path, notices: list[Notice]
) -> None:
    path = tmp_path / "config.toml"
    before = watched_tray.state
    assert before in ("idle", "watching") and watched_tray.shown_state == before
    replace_file(path, "[auth]\ntimeout = \n")  # not TOML
    qtbot.waitUntil(lambda: watched_tray.config_problem is not None, timeout=10_000)
    problem = watched_tray.config_problem
    assert problem is not None
    assert problem.startswith("The settings file ") and "config.toml" in problem
    assert "line 2" in problem
    assert watched_tray.shown_state == "error"
    assert "config.toml has a problem" in watched_tray.toolTip()
    watched_tray.menu.aboutToShow.emit()
    texts = watched_tray.action_texts()
    assert texts[1] == "What is wrong with the settings…"
    assert watched_tray.menu.actions()[0].toolTip() == problem
    assert watched_tray.cfg == cfg  # the last good settings stay in use
    watched_tray.flush_notifications()
    assert [n.kind for n in notices] == ["config-broken"]
    assert "config.toml" in notices[0].body and "faceunlock config edit" in notices[0].body

    # still broken, another way: a bad value, named
    replace_file(path, "[auth]\ntimeout = \"soon\"\n")
    qtbot.waitUntil(lambda: "auth.timeout" in (watched_tray.config_problem or ""),
                    timeout=10_000)
    assert watched_tray.shown_state == "error"

    # fixed: the error goes, the new values are used
    replace_file(path, to_toml(config_set(cfg, "auth.timeout", "5")))
    qtbot.waitUntil(lambda: watched_tray.config_problem is None, timeout=10_000)
    assert watched_tray.shown_state == before
    assert watched_tray.cfg.auth.timeout == 5
    assert "problem" not in watched_tray.toolTip()
    watched_tray.menu.aboutToShow.emit()
    assert "What is wrong with the settings…" not in watched_tray.action_texts()


def test_a_file_fixed_back_to_the_same_settings_keeps_the_watchers_state(
    qtbot: QtBot, watched_tray: TrayIcon, tmp_path: Path
) -> None:
    """A change that leaves the settings as they were (a comment; the file broken, then put
    back) does not reset what the watcher is doing."""
    path = tmp_path / "config.toml"
    good = path.read_text()
    watched_tray.set_state("authenticating", "")
    assert watched_tray.config_watcher is not None
    n = watched_tray.config_watcher.reloads
    replace_file(path, "# my settings\n" + good)
    qtbot.waitUntil(lambda: watched_tray.config_watcher is not None
                    and watched_tray.config_watcher.reloads > n, timeout=10_000)
    assert watched_tray.state == "authenticating"
    replace_file(path, good + "\n[[broken\n")
    qtbot.waitUntil(lambda: watched_tray.shown_state == "error", timeout=10_000)
    assert watched_tray.state == "authenticating"  # the watcher's, under the error
    replace_file(path, good)
    qtbot.waitUntil(lambda: watched_tray.config_problem is None, timeout=10_000)
    assert watched_tray.shown_state == "authenticating"
    assert "problem" not in watched_tray.toolTip()


def test_a_camera_of_this_run_is_kept_until_the_file_changes_the_camera(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    run_cfg = config_set(cfg, "camera.source", "/dev/video7")  # this run's --camera
    t = TrayIcon(store, run_cfg, USER, config_path=path, notifier=Notifier(fallback=print),
                 config_watcher=ConfigWatcher(path, delay_ms=50))
    try:
        replace_file(path, to_toml(config_set(cfg, "auth.timeout", "6")))
        qtbot.waitUntil(lambda: t.cfg.auth.timeout == 6, timeout=10_000)
        assert t.cfg.camera.source == "/dev/video7"
        replace_file(path, to_toml(config_set(cfg, "camera.source", "2")))
        qtbot.waitUntil(lambda: t.cfg.camera.source == "2", timeout=10_000)
    finally:
        t.deleteLater()


def test_a_file_broken_before_the_start_is_shown_at_once(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[camera]\nrotate = 45\n")
    t = TrayIcon(store, cfg, USER, config_path=path, notifier=Notifier(fallback=print),
                 config_watcher=ConfigWatcher(path, delay_ms=50))
    try:
        assert t.shown_state == "error"
        assert "camera.rotate" in t.status_text()
    finally:
        t.deleteLater()


def test_a_folder_made_later_is_watched(qtbot: QtBot, tmp_path: Path) -> None:
    """No config folder yet (a first run on defaults): the nearest folder above is watched,
    and the file is read once it appears."""
    path = tmp_path / "new" / "faceunlock" / "config.toml"
    w = ConfigWatcher(path, delay_ms=50)
    assert w.config == Config() and w.problem is None
    assert w.watched() == [str(tmp_path)]
    got: list[Config] = []
    w.changed.connect(got.append)
    path.parent.mkdir(parents=True)
    qtbot.waitUntil(lambda: str(path.parent) in w.watched(), timeout=10_000)
    save_config(config_set(Config(), "auth.timeout", "9"), path)
    qtbot.waitUntil(lambda: bool(got), timeout=10_000)
    assert got[-1].auth.timeout == 9
    # the same bytes written again are not a change
    n = w.reloads
    path.write_bytes(path.read_bytes())
    w.check()
    assert w.reloads == n


def test_the_message_names_the_file_once(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    msg = broken_message(p, ValueError(f"{p}: invalid TOML: Expected '=' (at line 1, column 3)"))
    assert msg == (f"The settings file {p} has a problem: invalid TOML: Expected '=' "
                   "(at line 1, column 3)")

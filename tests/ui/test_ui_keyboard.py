"""Keyboard only: the wizard is completed page by page with Tab, the arrow keys, Space and
Return sent to whichever widget has the focus; the Settings and Recalibrate dialogs reach
every control with Tab, in reading order, with their OK/Save and Cancel buttons last."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QApplication, QDialog, QDialogButtonBox, QWidget, QWizard
from pytestqt.qtbot import QtBot

from faceunlock.app import service
from faceunlock.config import Config, load_config
from faceunlock.engine.sources import make_source
from faceunlock.engine.templates import TemplateStore
from faceunlock.ui import wizard as wz
from faceunlock.ui.dialogs import RecalibrateDialog, SettingsDialog
from faceunlock.ui.wizard import EnrolWizard
from tests.fakes.clip_material import FAST_CAPTURE

USER = "alice"


def focused() -> QWidget:
    w = QApplication.focusWidget()
    assert w is not None, "nothing has the keyboard focus"
    return w


def press(qtbot: QtBot, key: Qt.Key) -> None:
    """A key press, delivered as a user's is: to the widget with the focus."""
    qtbot.keyClick(focused(), key)


def owner(w: QWidget, among: list[QWidget]) -> QWidget:
    """The widget of ``among`` that ``w`` is (or is part of: an editable combo's line edit)."""
    cur: QWidget | None = w
    while cur is not None:
        if cur in among:
            return cur
        cur = cur.parentWidget()
    return w


def tab_chain(qtbot: QtBot, among: list[QWidget], limit: int = 40) -> list[QWidget]:
    """Press Tab from the current focus until it comes back: the widgets visited, in order
    (each mapped onto ``among`` where it is part of one of them)."""
    first = owner(focused(), among)
    chain = [first]
    for _ in range(limit):
        press(qtbot, Qt.Key.Key_Tab)
        cur = owner(focused(), among)
        if cur is first:
            return chain
        chain.append(cur)
    raise AssertionError(f"Tab never came back to {first!r}: {chain!r}")


def tab_to(qtbot: QtBot, target: QWidget, limit: int = 40) -> None:
    for _ in range(limit):
        if owner(focused(), [target]) is target:
            return
        press(qtbot, Qt.Key.Key_Tab)
    raise AssertionError(f"Tab never reached {target!r}")


def _show(qtbot: QtBot, w: QWidget) -> None:
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=5_000)


@pytest.mark.slow
def test_the_wizard_is_completed_with_the_keyboard_alone(
    qtbot: QtBot, store: TemplateStore, cfg: Config, female_folder: Path
) -> None:
    w = EnrolWizard(store, cfg, user=USER, source_spec=str(female_folder), anchors=3,
                    realtime=False, enrol_overrides=FAST_CAPTURE)
    _show(qtbot, w)
    nxt = w.button(QWizard.WizardButton.NextButton)
    fin = w.button(QWizard.WizardButton.FinishButton)

    # Welcome: the appearance name is typed into its field, Return goes on
    welcome = w.currentPage()
    assert isinstance(welcome, wz.WelcomePage)
    tab_to(qtbot, welcome.name)
    qtbot.keyClick(focused(), Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(focused(), "glasses")
    assert welcome.name.text() == "glasses"
    press(qtbot, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.currentId() == wz.PAGE_CAMERA, timeout=5_000)

    # Camera: Tab reaches the source picker; Return (on it) is Next
    cam = w.currentPage()
    assert isinstance(cam, wz.CameraPage)
    tab_to(qtbot, cam.combo)
    qtbot.waitUntil(lambda: cam.preview.frames_shown >= 1, timeout=30_000)
    press(qtbot, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.currentId() == wz.PAGE_CAPTURE, timeout=5_000)

    # Capture: nothing to press until the anchors are in; then Next is the default button
    cap = w.currentPage()
    assert isinstance(cap, wz.CapturePage)
    qtbot.waitUntil(cap.isComplete, timeout=90_000)
    qtbot.waitUntil(nxt.isEnabled, timeout=5_000)
    assert nxt.isDefault()
    press(qtbot, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.currentId() == wz.PAGE_CALIBRATE, timeout=10_000)

    # Calibrate: Tab reaches the levels, Down picks the stricter one
    calp = w.currentPage()
    assert isinstance(calp, wz.CalibratePage)
    qtbot.waitUntil(lambda: calp.panel.choice is not None, timeout=30_000)
    radios = calp.panel.radios
    assert calp.panel.level == "balanced"
    tab_to(qtbot, radios["balanced"])
    press(qtbot, Qt.Key.Key_Down)
    assert calp.panel.level == "secure" and focused() is radios["secure"]
    press(qtbot, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.currentId() == wz.PAGE_ENABLE, timeout=5_000)

    # Enable: Tab to the watcher switch, Space flips it (the privileged button is left alone)
    en = w.currentPage()
    assert isinstance(en, wz.EnablePage)
    was = en.watcher.isChecked()
    tab_to(qtbot, en.watcher)
    press(qtbot, Qt.Key.Key_Space)
    assert en.watcher.isChecked() is not was
    press(qtbot, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.currentId() == wz.PAGE_FINISH, timeout=5_000)

    # Finish: Return presses Finish, which saves
    assert fin.isVisible() and fin.isDefault()
    press(qtbot, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=10_000)
    assert w.result() == QWizard.DialogCode.Accepted
    t = store.load(USER)
    assert len(t) == 3 and t.security_level == "secure"
    assert {a.label for a in t.anchors} == {"glasses"}
    assert load_config(os.environ["FACEUNLOCK_CONFIG"]).watcher.enabled is not was


def test_every_wizard_page_tab_order_ends_with_back_next_cancel(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    """On the first two pages (the others need a capture: see the test above), Tab visits the
    page's controls first, then the wizard's buttons in order."""
    w = EnrolWizard(store, cfg, user=USER, source_spec=str(tmp_path / "none.mp4"), anchors=3)
    _show(qtbot, w)
    buttons = [
        w.button(b)
        for b in (
            QWizard.WizardButton.BackButton,
            QWizard.WizardButton.NextButton,
            QWizard.WizardButton.CancelButton,
        )
    ]
    welcome = w.currentPage()
    assert isinstance(welcome, wz.WelcomePage)
    tab_to(qtbot, welcome.name)
    chain = tab_chain(qtbot, [welcome.name, *buttons])
    # Back is hidden on the first page
    assert chain == [welcome.name, buttons[1], buttons[2]]
    tab_to(qtbot, welcome.name)
    press(qtbot, Qt.Key.Key_Return)  # Next
    qtbot.waitUntil(lambda: w.currentId() == wz.PAGE_CAMERA, timeout=5_000)
    cam = w.currentPage()
    assert isinstance(cam, wz.CameraPage)
    tab_to(qtbot, cam.combo)
    chain = tab_chain(qtbot, [cam.combo, *buttons])
    assert chain == [cam.combo, *buttons]
    w.reject()


def test_settings_dialog_tab_order(qtbot: QtBot, cfg: Config) -> None:
    d = SettingsDialog(cfg)
    _show(qtbot, d)
    ok = d.buttons.button(QDialogButtonBox.StandardButton.Ok)
    cancel = d.buttons.button(QDialogButtonBox.StandardButton.Cancel)
    assert ok is not None and cancel is not None
    fields: list[QWidget] = [d.source, d.level, d.liveness, d.timeout, d.watcher,
                             d.snapshots]
    everything = [*fields, ok, cancel]
    assert owner(focused(), everything) is d.source  # the first field has the focus
    chain = tab_chain(qtbot, everything)
    # every control once, in reading order, the dialog's buttons last
    assert chain[: len(fields)] == fields
    assert set(chain[len(fields):]) == {ok, cancel} and len(chain) == len(everything)
    # and the keyboard works them: a level by the arrow keys, a switch by Space, Return is OK
    tab_to(qtbot, d.level)
    press(qtbot, Qt.Key.Key_Down)
    assert d.level.currentText() == "secure"
    tab_to(qtbot, d.snapshots)
    press(qtbot, Qt.Key.Key_Space)
    assert d.snapshots.isChecked()
    tab_to(qtbot, d.timeout)
    press(qtbot, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not d.isVisible(), timeout=5_000)
    assert d.result() == QDialog.DialogCode.Accepted
    saved = load_config(os.environ["FACEUNLOCK_CONFIG"])
    assert saved.auth.security_level == "secure" and saved.auth.snapshots


@pytest.fixture()
def enrolled(store: TemplateStore, cfg: Config, female_folder: Path) -> TemplateStore:
    service.enrol(store, USER, cfg, make_source(str(female_folder)),
                  params=service.enrol_params(cfg, 3, guided=False))
    return store


@pytest.mark.slow
def test_recalibrate_dialog_tab_order(
    qtbot: QtBot, enrolled: TemplateStore, cfg: Config, female_folder: Path
) -> None:
    d = RecalibrateDialog(enrolled, cfg, USER, source_spec=str(female_folder),
                          live_max_frames=3)
    _show(qtbot, d)
    assert d.error.text() == ""
    save = d.save_button
    cancel = d.buttons.button(QDialogButtonBox.StandardButton.Cancel)
    assert cancel is not None
    radios = d.panel.radios
    everything: list[QWidget] = [*radios.values(), d.live_button, save, cancel]
    tab_to(qtbot, radios[d.panel.level])
    chain = tab_chain(qtbot, everything)
    # the levels are one stop (the checked one; the arrow keys move within them), then the
    # live check, then Save and Cancel last
    assert chain[0] is radios["balanced"]
    assert chain[1] is d.live_button
    assert set(chain[2:]) == {save, cancel} and len(chain) == 4
    # every level is reachable with the arrow keys, and Return saves the one chosen
    assert focused() is radios["balanced"]
    press(qtbot, Qt.Key.Key_Up)
    assert focused() is radios["convenient"] and d.panel.level == "convenient"
    press(qtbot, Qt.Key.Key_Down)
    press(qtbot, Qt.Key.Key_Down)
    assert focused() is radios["secure"] and d.panel.level == "secure"
    ch = d.panel.choice
    assert ch is not None
    press(qtbot, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not d.isVisible(), timeout=5_000)
    assert d.result() == QDialog.DialogCode.Accepted
    t = enrolled.load(USER)
    assert t.security_level == "secure" and t.threshold == pytest.approx(ch.threshold)

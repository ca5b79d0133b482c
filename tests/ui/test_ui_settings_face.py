"""Settings: the security levels described as in the wizard; "Your face" lists the
appearances, removes one and deletes all the face data, each only after its question."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from faceunlock.config import Config
from faceunlock.engine import service
from faceunlock.engine.templates import Anchor, Template, TemplateStore
from faceunlock.ui.dialogs import SettingsDialog
from faceunlock.ui.password import PasswordDialog, confirm_password, password_helper
from faceunlock.ui.tray import TrayIcon
from faceunlock.ui.widgets import LEVEL_DESCRIPTIONS, CalibrationPanel, level_description

USER = "alice"


def _two_appearances(store: TemplateStore, cfg: Config) -> Template:
    """3 anchors "default" and 2 "glasses" of one made-up face (real encoder's sha)."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=128).astype(np.float32) * 0.1
    t = Template(user=USER, model_sha256=service.pipeline_for(cfg).encoder.sha256)
    for label, n in (("default", 3), ("glasses", 2)):
        t.add_anchors(
            Anchor.new(base + rng.normal(size=128).astype(np.float32) * 0.02,
                       np.zeros((64, 64, 3), np.uint8), label=label)
            for _ in range(n)
        )
    t.threshold = 0.46
    store.save(t)
    return t


class Answers:
    """Answers Settings' questions: ``yes`` for each, noting what was asked."""

    def __init__(self, yes: bool) -> None:
        self.yes = yes
        self.asked: list[tuple[str, str, str]] = []

    def __call__(self, title: str, text: str, button: str) -> bool:
        self.asked.append((title, text, button))
        return self.yes


def test_levels_carry_the_wizards_descriptions(qtbot: QtBot, cfg: Config) -> None:
    """Settings, the wizard's Security level page and Recalibrate describe each level in the
    same words (the two last share the levels panel)."""
    d = SettingsDialog(cfg)
    qtbot.addWidget(d)
    assert not d.face_box.isVisibleTo(d)  # no store given: no face section
    panel = CalibrationPanel()
    qtbot.addWidget(panel)
    for level in ("convenient", "balanced", "secure"):
        d.level.setCurrentText(level)
        assert d.level_description.text() == LEVEL_DESCRIPTIONS[level]
        panel.set_level(level)
        assert panel.description.text() == level_description(level)
        assert panel.description.text().endswith(d.level_description.text())


def test_remove_an_appearance_only_after_yes(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    _two_appearances(store, cfg)
    no = Answers(False)
    d = SettingsDialog(cfg, tmp_path / "c.toml", store=store, user=USER, ask=no)
    qtbot.addWidget(d)
    assert d.face_box.isVisibleTo(d)
    assert d.labels() == [("default", 3), ("glasses", 2)]
    d.appearances.setCurrentRow(1)
    assert d.remove_button.isEnabled()
    assert not d.remove_appearance()
    assert "“glasses” (2 pictures)" in no.asked[0][1] and no.asked[0][2] == "Remove"
    assert len(store.load(USER)) == 5  # No: nothing removed

    yes = Answers(True)
    d.ask = yes
    with qtbot.waitSignal(d.faceDataChanged, timeout=30_000):
        assert d.remove_appearance()
    t = store.load(USER)
    assert t.labels() == ["default"] and len(t) == 3
    assert t.threshold != 0.46 and t.calibration  # chosen again for what is left
    assert d.labels() == [("default", 3)]
    assert "Removed “glasses”" in d.face_status.text()
    # the only appearance left cannot be removed: that is "Delete all face data"
    assert not d.remove_button.isEnabled()
    assert not d.remove_appearance()
    assert len(yes.asked) == 1


def test_delete_all_face_data_only_after_yes_and_the_password(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    _two_appearances(store, cfg)
    passwords: list[tuple[str, str]] = []
    right = [False]

    def confirm(user: str, reason: str) -> bool:
        passwords.append((user, reason))
        return right[0]

    d = SettingsDialog(cfg, tmp_path / "c.toml", store=store, user=USER, ask=Answers(False),
                       confirm=confirm)
    qtbot.addWidget(d)
    assert not d.delete_face_data()
    assert store.exists(USER) and passwords == []  # No: not even the password is asked
    yes = Answers(True)
    d.ask = yes
    assert not d.delete_face_data()  # the password was not given
    assert store.exists(USER) and passwords == [(USER, "Deleting your face data cannot be "
                                                       "undone.")]
    right[0] = True
    assert d.delete_face_data()
    assert "password keeps working" in yes.asked[0][1] and yes.asked[0][2] == "Delete"
    assert not store.exists(USER) and not store.backup_path(USER).exists()
    assert d.labels() == []
    assert "deleted" in d.face_status.text()
    assert not d.delete_button.isEnabled()


def test_the_question_and_the_password_are_real_dialogs(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    """The default question: Cancel (the default button) keeps the data. Its Delete button
    leads to the password dialog, which PAM's helper checks: a wrong password is refused,
    Cancel there keeps the data too."""
    if password_helper() is None:
        pytest.skip("pam_unix's unix_chkpwd is not installed")
    _two_appearances(store, cfg)
    d = SettingsDialog(cfg, tmp_path / "c.toml", store=store, user=USER)
    # the face data is alice's; the password asked is the one of the user running the test
    d.confirm = lambda _user, reason: confirm_password(service.current_user(), reason,
                                                       parent=d)
    qtbot.addWidget(d)
    d.show()
    seen: dict[str, str] = {}

    def modal(kind: type, then: Callable[[QWidget], None]) -> None:
        w = QApplication.activeModalWidget()
        if not isinstance(w, kind):
            QTimer.singleShot(50, lambda: modal(kind, then))
            return
        then(w)

    def cancel_question(box: QWidget) -> None:
        assert isinstance(box, QMessageBox)
        assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
        box.button(QMessageBox.StandardButton.Cancel).click()

    def delete_then_wrong_password(box: QWidget) -> None:
        assert isinstance(box, QMessageBox)
        next(b for b in box.buttons() if b.text() == "Delete").click()
        QTimer.singleShot(50, lambda: modal(PasswordDialog, wrong_password))

    def wrong_password(pd: QWidget) -> None:
        assert isinstance(pd, PasswordDialog)
        pd.field.setText("certainly not the password")
        pd.accept()
        seen["message"] = pd.message.text()
        seen["visible"] = str(pd.isVisible())
        pd.reject()

    QTimer.singleShot(50, lambda: modal(QMessageBox, cancel_question))
    assert not d.delete_face_data()
    assert store.exists(USER)
    QTimer.singleShot(50, lambda: modal(QMessageBox, delete_then_wrong_password))
    assert not d.delete_face_data()
    assert store.exists(USER)
    assert seen == {"message": f"That is not the password of {service.current_user()}. "
                               "Try again.", "visible": "True"}


def test_the_tray_follows_a_deletion(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    _two_appearances(store, cfg)
    t = TrayIcon(store, cfg, USER, config_path=tmp_path / "c.toml")
    try:
        t.menu.aboutToShow.emit()
        assert "&Add appearance…" in t.action_texts()
        next(a for a in t.menu.actions() if a.text() == "&Settings…").trigger()
        (d,) = t.windows
        assert isinstance(d, SettingsDialog)
        qtbot.addWidget(d)
        assert d.labels() == [("default", 3), ("glasses", 2)]
        d.ask = Answers(True)
        d.confirm = lambda _user, _reason: True  # the password (see the test above)
        assert d.delete_face_data()
        assert t.status_text() == "Not enrolled"
        assert t.state == "idle"
        assert "&Enrol…" in t.action_texts()
        assert "&Test recognition…" in t.action_texts()
        test = next(a for a in t.menu.actions() if a.text() == "&Test recognition…")
        assert not test.isEnabled()
    finally:
        t.hide()
        t.deleteLater()

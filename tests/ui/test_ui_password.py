"""The user's password before "Replace my face…": checked by PAM's own helper (unix_chkpwd),
asked in a dialog that refuses a wrong one; the tray opens the new enrolment only after it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication, QDialog, QMessageBox, QWidget
from pytestqt.qtbot import QtBot

from faceunlock.config import Config
from faceunlock.engine import service
from faceunlock.engine.templates import Anchor, Template, TemplateStore
from faceunlock.ui.password import (
    PasswordDialog,
    check_password,
    confirm_password,
    password_helper,
)
from faceunlock.ui.tray import TrayIcon
from faceunlock.ui.wizard import EnrolWizard

USER = "alice"

needs_helper = pytest.mark.skipif(password_helper() is None,
                                  reason="pam_unix's unix_chkpwd is not installed")


def _enrolled(store: TemplateStore) -> None:
    t = Template(user=USER, model_sha256="0" * 64)
    t.add_anchor(Anchor.new(np.ones(128, np.float32) / np.sqrt(128),
                            np.zeros((64, 64, 3), np.uint8)))
    store.save(t)


def _when_modal(kind: type, then: Callable[[QWidget], None]) -> None:
    """Call ``then`` with the modal window of type ``kind`` once it is open."""
    w = QApplication.activeModalWidget()
    if not isinstance(w, kind):
        QTimer.singleShot(50, lambda: _when_modal(kind, then))
        return
    then(w)


@needs_helper
def test_pams_helper_refuses_a_wrong_password() -> None:
    me = service.current_user()
    assert check_password(me, "certainly not the password") is False
    assert check_password(me, "") is False
    assert check_password("no-such-user-here", "x") is False


def test_without_the_helper_the_password_cannot_be_checked(tmp_path: Path) -> None:
    assert check_password(service.current_user(), "x", helper=tmp_path / "missing") is None
    # and is not asked: nothing to check it with
    assert confirm_password(USER, "Testing.", helper_present=False) is True


def test_the_dialog_accepts_only_the_right_password(qtbot: QtBot) -> None:
    checked: list[tuple[str, str]] = []

    def check(user: str, password: str) -> bool:
        checked.append((user, password))
        return password == "right"

    d = PasswordDialog(USER, "Replacing your face starts a new enrolment.", check=check)
    qtbot.addWidget(d)
    d.show()
    d.field.setText("wrong")
    d.accept()
    assert d.isVisible() and d.result() != QDialog.DialogCode.Accepted
    assert d.message.text() == f"That is not the password of {USER}. Try again."
    assert d.field.text() == ""  # never left in the field
    d.field.setText("right")
    d.accept()
    assert d.result() == QDialog.DialogCode.Accepted
    assert checked == [(USER, "wrong"), (USER, "right")] and d.tries == 2


@needs_helper
def test_replace_asks_for_the_password_first(
    qtbot: QtBot, store: TemplateStore, cfg: Config, tmp_path: Path
) -> None:
    """Replace my face…: Yes to the question, then the password dialog. A wrong password
    (checked by the real helper), then Cancel: no enrolment opens. Once the password is
    confirmed, the wizard opens to replace the face."""
    _enrolled(store)
    t = TrayIcon(store, cfg, USER, config_path=tmp_path / "c.toml")
    me = service.current_user()  # the password asked is this user's (the test's)
    t.confirm_password = lambda _user, reason: confirm_password(me, reason)
    seen: dict[str, object] = {}

    def yes(box: QWidget) -> None:
        assert isinstance(box, QMessageBox)
        box.button(QMessageBox.StandardButton.Yes).click()
        QTimer.singleShot(50, lambda: _when_modal(PasswordDialog, wrong_then_cancel))

    def wrong_then_cancel(pd: QWidget) -> None:
        assert isinstance(pd, PasswordDialog)
        seen["asked"] = pd.user
        pd.field.setText("certainly not the password")
        pd.accept()
        seen["refused"] = pd.isVisible() and "not the password" in pd.message.text()
        pd.reject()

    try:
        QTimer.singleShot(50, lambda: _when_modal(QMessageBox, yes))
        assert t._open_dialog("replace") is None
        assert seen == {"asked": me, "refused": True}
        assert t.windows == []

        asked: list[str] = []

        def confirmed(_user: str, reason: str) -> bool:
            asked.append(reason)
            return True

        def only_yes(box: QWidget) -> None:
            assert isinstance(box, QMessageBox)
            box.button(QMessageBox.StandardButton.Yes).click()

        t.confirm_password = confirmed
        QTimer.singleShot(50, lambda: _when_modal(QMessageBox, only_yes))
        w = t._open_dialog("replace")
        assert isinstance(w, EnrolWizard) and w.replace
        qtbot.addWidget(w)
        assert asked == ["Replacing your face starts a new enrolment."]
        w.reject()
    finally:
        t.deleteLater()

"""The user's own password, asked before a change that starts the face data over.

"Replace my face…" (a new enrolment) and "Delete all face data…" ask for the password of the
logged-in user first, as an administrator dialog would: someone at an unlocked, unattended
session must not swap in their own face. The password is checked by PAM's own helper,
``unix_chkpwd`` (of pam_unix; set-group-id ``shadow``, so no administrator rights are needed
and only the user's own password is accepted): the password goes to its standard input, never
to a command line, and is not kept.

Where the helper is missing (no pam_unix) the password cannot be checked and is not asked:
:func:`check_password` returns None and :func:`confirm_password` lets the change go ahead.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

#: where pam_unix's password helper is installed (Debian/Ubuntu, Fedora, Arch, openSUSE)
HELPERS = (Path("/usr/sbin/unix_chkpwd"), Path("/sbin/unix_chkpwd"), Path("/usr/bin/unix_chkpwd"))

#: checks (user, password): True when right, False when wrong, None when it cannot be checked
Checker = Callable[[str, str], bool | None]


def password_helper() -> Path | None:
    """pam_unix's ``unix_chkpwd``, or None where it is not installed."""
    return next((p for p in HELPERS if p.is_file()), None)


def check_password(user: str, password: str, helper: Path | None = None) -> bool | None:
    """Whether ``password`` is ``user``'s login password (None: no helper to check it with).
    An empty password is never right."""
    tool = helper if helper is not None else password_helper()
    if tool is None:
        return None
    if not password:
        return False
    try:
        res = subprocess.run(
            [str(tool), user, "nonull"], input=password.encode() + b"\0",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.returncode == 0


class PasswordDialog(QDialog):
    """Asks for ``user``'s password (``reason``: what it is for); OK checks it with
    ``check`` and accepts only the right one (a wrong one is said so, the dialog stays)."""

    def __init__(
        self,
        user: str,
        reason: str,
        *,
        check: Checker = check_password,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("FaceUnlock: your password")
        self.user = user
        self.check = check
        self.tries = 0
        lay = QVBoxLayout(self)
        text = QLabel(f"{reason} To make sure it is you, type the password of {user}.")
        text.setWordWrap(True)
        lay.addWidget(text)
        self.field = QLineEdit()
        self.field.setObjectName("password")
        self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.setPlaceholderText("Password")
        lay.addWidget(self.field)
        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c02020;")
        lay.addWidget(self.message)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.setMinimumWidth(380)

    def accept(self) -> None:
        self.tries += 1
        password = self.field.text()
        self.field.clear()
        ok = self.check(self.user, password)
        if ok is False:
            self.message.setText(f"That is not the password of {self.user}. Try again.")
            self.field.setFocus()
            return
        super().accept()


def confirm_password(
    user: str, reason: str, *, check: Checker = check_password,
    helper_present: bool | None = None, parent: QWidget | None = None,
) -> bool:
    """Ask for ``user``'s password (modal); True once the right one was typed, False when the
    dialog was cancelled. True without asking where the password cannot be checked
    (``helper_present``: whether it can, default: :func:`password_helper` finds the
    helper)."""
    present = helper_present if helper_present is not None else password_helper() is not None
    if not present:
        return True
    d = PasswordDialog(user, reason, check=check, parent=parent)
    return d.exec() == QDialog.DialogCode.Accepted

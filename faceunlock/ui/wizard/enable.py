"""The Enable page: the lock-screen switch and the opt-in login-screen/sudo step."""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import TYPE_CHECKING

from PyQt6.QtCore import QProcess, Qt
from PyQt6.QtGui import QFontDatabase
from PyQt6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWizardPage,
)

from faceunlock.ui.wizard.common import error_style, plain_style

if TYPE_CHECKING:
    from faceunlock.ui.wizard.wizard import EnrolWizard

#: the privilege-escalation prefix of the login-screen step ($FACEUNLOCK_PKEXEC overrides;
#: an empty value runs the command as is, for tests with ``--root``)
PKEXEC_ENV = "FACEUNLOCK_PKEXEC"


def default_elevate() -> list[str]:
    """The privilege-escalation prefix: ``$FACEUNLOCK_PKEXEC`` split like a shell would (empty:
    none), else ``pkexec``."""
    env = os.environ.get(PKEXEC_ENV)
    return ["pkexec"] if env is None else shlex.split(env)


class EnablePage(QWizardPage):
    """Where the face is used: the lock-screen watcher (a config switch, written at Finish)
    and, opt-in, the login screen and sudo (PAM: ``faceunlock system enable`` through the
    privilege-escalation prefix, run in a QProcess so the window never blocks).

    Leaving the page untouched changes nothing."""

    def __init__(self, wiz: EnrolWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("Turn it on")
        self.setSubTitle("Choose where your face is used. Your password always keeps working.")
        lay = QVBoxLayout(self)
        self.watcher = QCheckBox("&Unlock my locked session when it sees my face")
        self.watcher.setObjectName("watcher_check")
        self.watcher.setChecked(wiz.cfg.watcher.enabled)
        lay.addWidget(self.watcher)
        watcher_note = QLabel(
            "While your session is locked, FaceUnlock looks for you with the camera and unlocks "
            "when it sees you. The camera is off while you are working. Saved when you press "
            "Finish."
        )
        watcher_note.setWordWrap(True)
        lay.addWidget(watcher_note)
        box = QGroupBox(
            "Also use my face at the login screen and for sudo (needs administrator rights)"
        )
        box.setObjectName("system_box")
        bl = QVBoxLayout(box)
        self.summary = QLabel()
        self.summary.setObjectName("system_summary")
        self.summary.setWordWrap(True)
        bl.addWidget(self.summary)
        self.changes = QPlainTextEdit()
        self.changes.setObjectName("system_changes")
        self.changes.setReadOnly(True)
        self.changes.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.changes.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        bl.addWidget(self.changes)
        self.undo = QLabel()
        self.undo.setObjectName("system_undo")
        self.undo.setWordWrap(True)
        self.undo.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bl.addWidget(self.undo)
        row = QHBoxLayout()
        self.run_button = QPushButton("Turn on for the &login screen and sudo…")
        self.run_button.setObjectName("system_enable")
        self.run_button.clicked.connect(self.run_enable)
        row.addWidget(self.run_button)
        row.addStretch(1)
        bl.addLayout(row)
        self.outcome = QLabel()
        self.outcome.setObjectName("system_outcome")
        self.outcome.setWordWrap(True)
        self.outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bl.addWidget(self.outcome)
        lay.addWidget(box)
        lay.addStretch(1)
        self.process: QProcess | None = None
        self.succeeded = False

    def initializePage(self) -> None:
        from faceunlock.unlock import system

        pv = system.enable_preview(self.wiz.system_root)
        self.summary.setText("Optional. The button below changes system files. " + pv.summary)
        self.changes.setPlainText("\n".join(pv.lines))
        rows = min(max(len(pv.lines), 1), 7)
        self.changes.setFixedHeight(
            self.changes.fontMetrics().lineSpacing() * rows
            + 2 * (self.changes.frameWidth() + 4)
            + self.changes.horizontalScrollBar().sizeHint().height()  # type: ignore[union-attr]
        )
        self.undo.setText(
            f"To undo it later, run: {pv.undo}. The login screen uses a root-only copy of "
            "your face data: after Finish, run `faceunlock system-copy` once."
        )
        if self.process is None and not self.succeeded:
            plain_style(self.outcome)
            if pv.problem is not None:
                error_style(self.outcome)
                self.outcome.setText(f"Not available yet: {pv.problem}.")
            elif not pv.automatic:
                self.outcome.setText("Make the change by hand as shown above.")
            else:
                self.outcome.setText("")
        self.run_button.setEnabled(pv.problem is None and pv.automatic and self.process is None)

    def command(self) -> list[str]:
        """The privileged command: the prefix, then ``python -I -m faceunlock system enable``
        (isolated: nothing from the current folder or PYTHONPATH is imported as root)."""
        cmd = [sys.executable, "-I", "-m", "faceunlock", "system", "enable", "--json"]
        if self.wiz.system_root != "/":
            cmd += ["--root", self.wiz.system_root]
        return [*self.wiz.elevate, *cmd]

    def run_enable(self) -> None:
        """Start the command (non-blocking); the outcome arrives in :meth:`_finished`."""
        if self.process is not None:
            return
        cmd = self.command()
        proc = QProcess(self)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._failed_to_start)
        self.process = proc
        self.run_button.setEnabled(False)
        plain_style(self.outcome)
        self.outcome.setText(
            "Waiting for the administrator password…" if self.wiz.elevate else "Working…"
        )
        self.completeChanged.emit()
        proc.start(cmd[0], cmd[1:])

    def _done(self, text: str, ok: bool) -> None:
        if self.process is not None:
            self.process.deleteLater()
        self.process = None
        self.succeeded = self.succeeded or ok
        if ok:
            plain_style(self.outcome)
        else:
            error_style(self.outcome)
        self.outcome.setText(text)
        self.run_button.setEnabled(not ok)
        self.completeChanged.emit()

    def _failed_to_start(self, err: QProcess.ProcessError) -> None:
        if err != QProcess.ProcessError.FailedToStart or self.process is None:
            return  # crashes arrive through finished
        prog = self.process.program()
        self._done(
            f"Not done: could not start {prog} ({self.process.errorString()}). "
            "Nothing was changed.",
            False,
        )

    def _finished(self, code: int, status: QProcess.ExitStatus) -> None:
        proc = self.process
        if proc is None:
            return
        out = bytes(proc.readAllStandardOutput().data()).decode("utf-8", "replace")
        err = bytes(proc.readAllStandardError().data()).decode("utf-8", "replace").strip()
        self._done(*enable_outcome(code, status, out, err, bool(self.wiz.elevate)))

    def isComplete(self) -> bool:
        return self.process is None

    def stop(self) -> None:
        """Nothing to stop: a running privileged step is left to finish on its own."""


def enable_outcome(
    code: int, status: QProcess.ExitStatus, out: str, err: str, elevated: bool
) -> tuple[str, bool]:
    """(words for a person, success) for the end of ``system enable --json``."""
    if status != QProcess.ExitStatus.NormalExit:
        return "Not done: the command stopped unexpectedly. Nothing was changed.", False
    if code == 0:
        try:
            plan = json.loads(out)
            messages = [str(m).strip() for m in plan.get("messages", [])]
        except (ValueError, AttributeError):
            return "Done.", True
        detail = "; ".join(m for m in messages if m and not m.startswith("the password"))
        if plan.get("ran"):
            return (
                f"Done: your face now also works at the login screen and for sudo ({detail}).",
                True,
            )
        return f"Checked, nothing was changed on this system: {detail}.", True
    if elevated and code == 126:
        return (
            "Not done: the administrator password was not given (the dialog was closed or "
            "the password was wrong). Nothing was changed.",
            False,
        )
    if elevated and code == 127:
        return "Not done: you are not allowed to make this change. Nothing was changed.", False
    last = err.splitlines()[-1] if err else "no message"
    last = last.removeprefix("faceunlock: error: ")
    return f"Not done (exit code {code}): {last}", False



"""The Enable page: the lock-screen switch and the opt-in login-screen/sudo step."""

from __future__ import annotations

import json
import os
import shlex
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
    QWidget,
    QWizardPage,
)

from faceunlock.paths import isolated_command
from faceunlock.ui.wizard.common import details_button, error_style, plain_style

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
        lay.addWidget(self._liveness_box())
        box = QGroupBox(
            "Also use my face at the login screen and for sudo (needs administrator rights)"
        )
        box.setObjectName("system_box")
        bl = QVBoxLayout(box)
        self.plain = QLabel(
            "Optional. Your face can also be accepted at the login screen (before you log "
            "in), by sudo in a terminal, and in the administrator password dialogs. This "
            "changes a system setting, so the button asks for the administrator password."
        )
        self.plain.setObjectName("system_plain")
        self.plain.setWordWrap(True)
        bl.addWidget(self.plain)
        # the exact change, for those who want to check it: behind Details
        details = QWidget()
        dl = QVBoxLayout(details)
        dl.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel()
        self.summary.setObjectName("system_summary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        dl.addWidget(self.summary)
        self.changes = QPlainTextEdit()
        self.changes.setObjectName("system_changes")
        self.changes.setReadOnly(True)
        self.changes.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.changes.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        dl.addWidget(self.changes)
        self.details = details
        self.details_button = details_button(details, "Details: the exact change")
        self.details_button.setObjectName("system_details")
        bl.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignLeft)
        bl.addWidget(details)
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
        self.undo = QLabel()
        self.undo.setObjectName("system_undo")
        self.undo.setWordWrap(True)
        self.undo.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bl.addWidget(self.undo)
        lay.addWidget(box)
        lay.addStretch(1)
        self.process: QProcess | None = None
        self.succeeded = False

    def _liveness_box(self) -> QGroupBox:
        """What stops a photo of the user: the warning for a colour camera with the check
        off, and each ``liveness.level`` in plain words (under Details)."""
        box = QGroupBox("Photos and phone screens")
        box.setObjectName("liveness_box")
        bl = QVBoxLayout(box)
        self.liveness_warning = QLabel()
        self.liveness_warning.setObjectName("liveness_warning")
        self.liveness_warning.setWordWrap(True)
        self.liveness_warning.setTextFormat(Qt.TextFormat.RichText)
        self.liveness_warning.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )
        bl.addWidget(self.liveness_warning)
        self.liveness_levels = QLabel(
            "<p><b>Off</b>: no check. With a colour camera, anyone who holds up a photo or a "
            "phone picture of you can unlock.</p>"
            "<p><b>Passive</b>: before it unlocks, FaceUnlock looks for signs of a photo or a "
            "screen (the frame of a phone, glare on glass, a face that never moves). It stops "
            "most photos and phone screens, and asks nothing of you; a very good print or a "
            "mask can still get through.</p>"
            "<p><b>Active</b>: Passive, then FaceUnlock asks you to turn your head to the left "
            "or the right, or to blink twice (chosen at random), and checks that the face it "
            "recognised does it, within a few seconds. This also stops a video of you played "
            "back on a screen; each unlock takes about a second longer. The unlock prompt "
            "shows the request; the automatic lock-screen unlock does not try at this "
            "level.</p>"
        )
        self.liveness_levels.setObjectName("liveness_levels")
        self.liveness_levels.setTextFormat(Qt.TextFormat.RichText)
        self.liveness_levels.setWordWrap(True)
        self.liveness_levels.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        levels_button = details_button(self.liveness_levels, "What the photo check levels do")
        levels_button.setObjectName("liveness_details")
        bl.addWidget(levels_button, 0, Qt.AlignmentFlag.AlignLeft)
        bl.addWidget(self.liveness_levels)
        return box

    def colour_camera(self) -> bool:
        """The chosen source is not an infrared camera (a colour camera, a video or pictures:
        all show what a photo or a phone screen shows)."""
        from faceunlock.ui.camera_choice import camera_index

        idx = camera_index(self.wiz.source_spec or self.wiz.cfg.camera.source)
        devices = self.wiz.camera_page.camera_kind.devices
        return not any(d.index == idx and d.is_ir for d in devices)

    def _show_liveness(self) -> None:
        level = self.wiz.cfg.liveness.level
        colour = self.colour_camera()
        if level == "off" and colour:
            self.liveness_warning.setStyleSheet("color: #b00000;")
            text = (
                "<b>Warning: the photo check is off. With a colour camera like this one, a "
                "photo or a phone picture of you can unlock this computer.</b> If other people "
                "can reach it, turn the check on with this command:<br>"
                "<code>faceunlock config set liveness.level passive</code>"
            )
        elif level == "off":
            self.liveness_warning.setStyleSheet("")
            text = (
                "The photo check is off. Your infrared camera is much harder to fool with a "
                "photo or a phone screen; turning the check on adds a second layer:<br>"
                "<code>faceunlock config set liveness.level passive</code>"
            )
        else:
            self.liveness_warning.setStyleSheet("")
            text = (
                f"The photo check is on ({level.capitalize()}): a photo or a phone screen held "
                "up to the camera is refused in most cases, though no check is perfect."
            )
        self.liveness_warning.setText(text)

    def initializePage(self) -> None:
        from faceunlock.unlock import system

        self._show_liveness()
        pv = system.enable_preview(self.wiz.system_root)
        self.summary.setText(pv.summary)
        self.changes.setPlainText("\n".join(pv.lines))
        rows = min(max(len(pv.lines), 1), 7)
        self.changes.setFixedHeight(
            self.changes.fontMetrics().lineSpacing() * rows
            + 2 * (self.changes.frameWidth() + 4)
            + self.changes.horizontalScrollBar().sizeHint().height()  # type: ignore[union-attr]
        )
        self.undo.setText(
            f"You can turn it off again later with: {pv.undo}. The login screen keeps its own "
            "copy of your face data: after Finish, run `faceunlock system-copy` once."
        )
        # how to undo matters once it can be done
        self.undo.setVisible(pv.problem is None or self.succeeded)
        if self.process is None and not self.succeeded:
            plain_style(self.outcome)
            if pv.problem is not None:
                error_style(self.outcome)
                self.outcome.setText(f"Not available yet: {pv.problem}.")
            elif not pv.automatic:
                # the change is made by hand: show it
                self.details_button.setChecked(True)
                self.outcome.setText("Make the change by hand as shown above.")
            else:
                self.outcome.setText("")
        self.run_button.setEnabled(pv.problem is None and pv.automatic and self.process is None)

    def command(self) -> list[str]:
        """The privileged command: the prefix, then ``python -I -m faceunlock system enable``
        (isolated: nothing from the current folder or PYTHONPATH is imported as root)."""
        cmd = [*isolated_command(), "system", "enable", "--json"]
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



"""The enrolment wizard: welcome, camera, capture, calibrate, enable, finish.

Nothing is written until Finish: the anchors and the chosen threshold live in memory, and
the template is saved once, atomically, by :meth:`TemplateStore.save`; the lock-screen
watcher switch of the Enable page and the camera chosen on the Camera page are written to
the config file then too (one atomic write), and only if they changed. The camera the wizard
started with (``cfg.camera.source``, which may be a ``--camera`` override of this run) is
never written by itself. Cancel
(or closing the window) at any point saves nothing. The one exception is the Enable page's
opt-in login-screen/sudo step: it changes system files when (and only when) its button is
pressed, through ``pkexec faceunlock system enable``, because it needs administrator rights.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtCore import QProcess, Qt
from PyQt6.QtGui import QFontDatabase
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from faceunlock.config import Config, config_set, load_config, save_config
from faceunlock.engine import calibration as cal
from faceunlock.engine import service
from faceunlock.engine.enrollment import Capture, EnrolmentSession, EnrolParams
from faceunlock.engine.sources import FrameSource, make_source
from faceunlock.engine.templates import Anchor, Template, TemplateStore, check_label
from faceunlock.errors import FaceUnlockError
from faceunlock.ui.widgets import CalibrationPanel, PreviewLabel, to_pixmap
from faceunlock.ui.workers import (
    CameraWorker,
    EnrolWorker,
    FramePacket,
    WorkerThread,
    plain_message,
)

PAGE_WELCOME, PAGE_CAMERA, PAGE_CAPTURE, PAGE_CALIBRATE, PAGE_ENABLE, PAGE_FINISH = range(6)
#: the privilege-escalation prefix of the login-screen step ($FACEUNLOCK_PKEXEC overrides;
#: an empty value runs the command as is, for tests with ``--root``)
PKEXEC_ENV = "FACEUNLOCK_PKEXEC"
OTHER_SOURCE = "__other__"
OTHER_FOLDER = "__folder__"


def _error_style(label: QLabel) -> None:
    label.setStyleSheet("color: #c02020;")
    label.setWordWrap(True)


def _plain_style(label: QLabel) -> None:
    label.setStyleSheet("")


def default_elevate() -> list[str]:
    """The privilege-escalation prefix: ``$FACEUNLOCK_PKEXEC`` split like a shell would (empty:
    none), else ``pkexec``."""
    env = os.environ.get(PKEXEC_ENV)
    return ["pkexec"] if env is None else shlex.split(env)


class WelcomePage(QWizardPage):
    def __init__(self, wiz: EnrolWizard) -> None:
        super().__init__()
        self.setTitle("Set up face unlock")
        lay = QVBoxLayout(self)
        path = wiz.store.path(wiz.user)
        text = QLabel(
            f"<p>FaceUnlock will learn your face (user <b>{wiz.user}</b>) so you can unlock "
            "this computer by looking at the camera. Your password always keeps working.</p>"
            f"<p><b>What is stored:</b> {wiz.anchors} face descriptors (lists of 128 numbers) "
            "instead of photos, small 64×64 face thumbnails for this window, and the "
            "chosen threshold.</p>"
            f"<p><b>Where:</b> {path}</p>"
            "<p><b>How it is protected:</b> encrypted with AES-256-GCM; the key is kept in "
            "your login keyring. The file is readable by you only.</p>"
            "<p><b>Nothing leaves this machine.</b> No network is used.</p>"
            "<p>Nothing is saved until you press Finish at the end.</p>"
        )
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(text)
        self.wiz = wiz
        adding = wiz.store.exists(wiz.user) and not wiz.replace
        self.name = QLineEdit("" if adding and wiz.label == "default" else wiz.label)
        self.name.setObjectName("appearance_name")
        self.name.setPlaceholderText("e.g. glasses")
        self.name.setMaxLength(64)
        self.name.textChanged.connect(lambda _t: self.completeChanged.emit())
        name_label = QLabel("&Name of this appearance:")
        name_label.setBuddy(self.name)
        row = QHBoxLayout()
        row.addWidget(name_label)
        row.addWidget(self.name, 1)
        lay.addLayout(row)
        replacing = wiz.store.exists(wiz.user) and wiz.replace
        hint = QLabel(
            "You are already enrolled: these pictures are added to your face data as another "
            "appearance (for example with glasses, or in another room). Give it a name so "
            "you can remove it later. First you look at the camera so FaceUnlock can check "
            "that you are the enrolled owner: only you can add an appearance, and every new "
            "picture must match you."
            if adding
            else "Starting over: your current face data is replaced by this enrolment when "
            "you press Finish (until then nothing changes)."
            if replacing
            else "Enrol how you usually look; you can add other appearances (for example "
            "with glasses) later from the tray menu."
        )
        hint.setObjectName("appearance_hint")
        hint.setWordWrap(True)
        lay.addWidget(hint)
        self.error = QLabel()
        _error_style(self.error)
        lay.addWidget(self.error)
        lay.addStretch(1)

    def isComplete(self) -> bool:
        return bool(self.name.text().strip())

    def validatePage(self) -> bool:
        label = self.name.text().strip()
        try:
            check_label(label)
        except FaceUnlockError:
            self.error.setText("Use 1 to 64 ordinary characters for the name (no tabs or line "
                               "breaks), for example “glasses”.")
            return False
        self.error.setText("")
        self.wiz.label = label
        return True


class CameraPage(QWizardPage):
    """Pick the source and check the picture; a live preview runs while the page is shown."""

    def __init__(self, wiz: EnrolWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("Camera")
        self.setSubTitle("Choose the camera and check that your face is framed and lit.")
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        self.combo = QComboBox()
        self.combo.setObjectName("source_combo")
        # a long video path must not widen the window past the screen (the text is elided)
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(24)
        src_label = QLabel("&Source:")
        src_label.setBuddy(self.combo)
        row.addWidget(src_label)
        row.addWidget(self.combo, 1)
        lay.addLayout(row)
        self.preview = PreviewLabel()
        lay.addWidget(self.preview, 1)
        self.indicator = QLabel("Starting the camera…")
        self.indicator.setObjectName("indicator")
        self.indicator.setWordWrap(True)
        lay.addWidget(self.indicator)
        from faceunlock.ui.camera_choice import CameraKindLabel

        self.camera_kind = CameraKindLabel()  # infrared or colour camera (lists the devices)
        lay.addWidget(self.camera_kind)
        self._fill_sources()
        self.camera_kind.set_spec(self.spec())
        self.combo.activated.connect(self._activated)
        self.combo.currentIndexChanged.connect(lambda _i: self._restart())
        self.combo.currentIndexChanged.connect(lambda _i: self.camera_kind.set_spec(self.spec()))
        self.worker_thread: WorkerThread | None = None

    def _fill_sources(self) -> None:
        """Cameras by name (infrared ones labelled, and preferred while the config has the
        default source), the configured and requested sources, then "Video file…"."""
        from faceunlock.ui.camera_choice import preferred_source, source_items

        self.combo.blockSignals(True)
        devices = self.camera_kind.devices
        cfg_spec = self.wiz.cfg.camera.source
        for label, spec in source_items(devices, cfg_spec, self.wiz.initial_spec):
            self.combo.addItem(label, spec)
        self.combo.addItem("Video file…", OTHER_SOURCE)
        self.combo.addItem("Folder of images…", OTHER_FOLDER)
        want = self.wiz.initial_spec or preferred_source(devices, cfg_spec)
        i = self.combo.findData(want)
        self.combo.setCurrentIndex(max(i, 0))
        self.combo.blockSignals(False)

    def _activated(self, index: int) -> None:
        kind = self.combo.itemData(index)
        if kind == OTHER_SOURCE:
            path, _ = QFileDialog.getOpenFileName(
                self,
                "Choose a video file",
                str(Path.home()),
                "Videos (*.mp4 *.avi *.mkv *.webm *.gif);;All files (*)",
            )
        elif kind == OTHER_FOLDER:
            path = QFileDialog.getExistingDirectory(
                self, "Choose a folder of face pictures", str(Path.home())
            )
        else:
            return
        if path:
            self.add_source(path)
        else:
            self.combo.setCurrentIndex(0)

    def add_source(self, spec: str) -> None:
        """Add (or select) a source spec in the combo."""
        i = self.combo.findData(spec)
        if i < 0:
            i = self.combo.findData(OTHER_SOURCE)
            self.combo.insertItem(i, spec, spec)
        self.combo.setCurrentIndex(i)

    def spec(self) -> str | None:
        data = self.combo.currentData()
        return None if data in (None, OTHER_SOURCE, OTHER_FOLDER) else str(data)

    def missing_camera(self) -> bool:
        """The chosen source is a camera that is not connected."""
        from faceunlock.ui.camera_choice import camera_missing

        return camera_missing(self.spec(), self.camera_kind.devices)

    def isComplete(self) -> bool:
        return self.spec() is not None and not self.missing_camera()

    def _restart(self) -> None:
        self.stop()
        self.completeChanged.emit()
        spec = self.spec()
        if spec is None or self.wiz.currentId() != PAGE_CAMERA:
            return
        if self.missing_camera():
            _error_style(self.indicator)
            self.indicator.setText(
                "No camera found. Connect a camera, or choose a video file or a folder of "
                "pictures above."
            )
            return
        self.indicator.setText("Starting the camera…")
        self.wiz.source_spec = spec
        worker = CameraWorker(
            self.wiz.source_factory(spec, preview=True),
            self.wiz.pipe_factory,
            min_interval=self.wiz.min_interval,
        )
        worker.frame.connect(self._frame)
        worker.error.connect(self._error)
        self.worker_thread = WorkerThread(worker)
        self.worker_thread.start()

    def _frame(self, pkt: FramePacket) -> None:
        min_face = self.wiz.cfg.detector.min_face
        box = pkt.box
        if pkt.dark:
            msg = "Too dark: turn on a light in front of you"
        elif box is None:
            msg = "No face found: look at the camera"
        elif len(pkt.boxes) > 1:
            msg = "Several faces: make sure only you are in view"
        elif min(box[2] - box[0], box[3] - box[1]) < min_face:
            msg = "Move closer to the camera"
        else:
            msg = "Good: your face is visible"
        self.indicator.setStyleSheet("")
        self.indicator.setText(msg)
        self.preview.show_frame(pkt.image, pkt.boxes, good=msg.startswith("Good"))

    def _error(self, msg: str) -> None:
        _error_style(self.indicator)
        self.indicator.setText(msg)

    def stop(self) -> None:
        if self.worker_thread is not None:
            self.worker_thread.stop()
            self.worker_thread = None

    def validatePage(self) -> bool:
        self.stop()
        spec = self.spec()
        if spec is None or self.missing_camera():
            return False
        self.wiz.source_spec = spec
        return True

    def cleanupPage(self) -> None:
        self.stop()


class CapturePage(QWizardPage):
    """Guided capture: pose instruction, progress 'anchor k of N', feedback, thumbnails."""

    def __init__(self, wiz: EnrolWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("Capture your face")
        self.setSubTitle("Follow the instruction; pictures are taken automatically.")
        lay = QVBoxLayout(self)
        self.instruction = QLabel()
        self.instruction.setObjectName("instruction")
        f = self.instruction.font()
        f.setPointSizeF(f.pointSizeF() * 1.4)
        f.setBold(True)
        self.instruction.setFont(f)
        lay.addWidget(self.instruction)
        self.preview = PreviewLabel()
        lay.addWidget(self.preview, 1)
        self.progress = QProgressBar()
        self.progress.setObjectName("progress")
        self.progress.setFormat("anchor %v of %m")
        lay.addWidget(self.progress)
        # progress per pose, like a ring that fills: one label per pose asked for
        self.pose_row = QHBoxLayout()
        self.pose_labels: dict[str, QLabel] = {}
        pose_box = QWidget()
        pose_box.setObjectName("pose_progress")
        pose_box.setLayout(self.pose_row)
        lay.addWidget(pose_box)
        self.feedback = QLabel()
        self.feedback.setObjectName("feedback")
        self.feedback.setWordWrap(True)
        lay.addWidget(self.feedback)
        self.thumbs = QHBoxLayout()
        self.thumbs.setAlignment(Qt.AlignmentFlag.AlignLeft)
        thumbs_box = QWidget()
        thumbs_box.setLayout(self.thumbs)
        lay.addWidget(thumbs_box)
        self.retry = QPushButton("&Start again")
        self.retry.setObjectName("retry")
        self.retry.clicked.connect(self.start)
        self.retry.setVisible(False)
        lay.addWidget(self.retry, 0, Qt.AlignmentFlag.AlignLeft)
        self.worker_thread: WorkerThread | None = None
        self.captures: list[Capture] = []

    def initializePage(self) -> None:
        self.start()

    def start(self) -> None:
        self.stop()
        self.captures = []
        self.wiz.captures = []
        while self.thumbs.count():
            item = self.thumbs.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()  # type: ignore[union-attr]
        params = self.wiz.enrol_params()
        self.progress.setRange(0, sum(params.quotas().values()) if params.guided
                               else params.anchors)
        self.progress.setValue(0)
        self._show_poses(EnrolmentSession(None, params).pose_progress())
        self.instruction.setText("Look straight at the camera")
        self.feedback.setStyleSheet("")
        self.retry.setVisible(False)
        spec = self.wiz.source_spec or self.wiz.cfg.camera.source
        owner_check = self.wiz.owner_check(spec) if self.wiz.adding() else None
        self.feedback.setText(
            f"First, look at the camera: FaceUnlock checks that you are {self.wiz.user}, "
            "the enrolled owner…" if owner_check is not None else "Starting the camera…"
        )
        worker = EnrolWorker(
            self.wiz.source_factory(spec, preview=False),
            self.wiz.pipe_factory,
            params,
            min_interval=self.wiz.min_interval,
            owner_check=owner_check,
        )
        worker.frame.connect(self._frame)
        worker.error.connect(self._error)
        worker.completed.connect(self._completed)
        worker.finished.connect(self._finished)
        self.worker_thread = WorkerThread(worker)
        self.worker_thread.start()
        self.completeChanged.emit()

    def _frame(self, pkt: FramePacket) -> None:
        fb = pkt.feedback
        if fb is None:
            return
        self.preview.show_frame(pkt.image, pkt.boxes, good=fb.accepted)
        self.progress.setMaximum(fb.target)
        self.progress.setValue(fb.progress)
        self._show_poses(fb.poses)
        self.instruction.setText(fb.instruction if not fb.done else "Done")
        if fb.failed:
            self.instruction.setText("Not finished")
            _error_style(self.feedback)
            self.feedback.setText(fb.reason)
            self.retry.setVisible(True)
            return
        self.feedback.setStyleSheet("")
        self.feedback.setText("Captured" if fb.accepted else fb.reason)
        if pkt.capture is not None:
            self.captures.append(pkt.capture)
            thumb = QLabel()
            thumb.setPixmap(to_pixmap(pkt.capture.thumbnail))
            thumb.setToolTip(f"pose: {pkt.capture.pose}")
            self.thumbs.addWidget(thumb)

    def _show_poses(self, poses: Sequence[Any]) -> None:
        """One label per pose: "Left 1/2", ticked when done, bold while asked for."""
        for pp in poses:
            label = self.pose_labels.get(pp.pose)
            if label is None:
                label = QLabel()
                label.setObjectName(f"pose_{pp.pose}")
                self.pose_labels[pp.pose] = label
                self.pose_row.addWidget(label)
            mark = {"done": " ✓", "skipped": " (skipped)", "missing": " ✗"}.get(pp.state, "")
            label.setText(f"{pp.name} {pp.taken}/{pp.quota}{mark}")
            label.setStyleSheet(
                "font-weight: bold;" if pp.state == "current"
                else "color: #c02020; font-weight: bold;" if pp.state == "missing"
                else "color: gray;" if pp.state == "skipped" else ""
            )
            label.setToolTip(pp.state)

    def _completed(self) -> None:
        self.wiz.captures = list(self.captures)
        worker = self.worker_thread.worker if self.worker_thread is not None else None
        session = getattr(worker, "session", None)
        self.wiz.capture_summary = session.summary() if session is not None else ""
        self.feedback.setText(f"Captured {self.wiz.capture_summary}. Press Next.")
        self.completeChanged.emit()

    def _finished(self) -> None:
        if (
            not self.isComplete()
            and self.worker_thread is not None
            and not self.worker_thread.worker.stopping
        ):
            if not self.feedback.styleSheet():
                self.feedback.setText(
                    f"The video ended after {len(self.captures)} of {self.progress.maximum()} "
                    "anchors. Press Start again, or go Back and pick another source."
                )
            self.retry.setVisible(True)

    def _error(self, msg: str) -> None:
        _error_style(self.feedback)
        self.feedback.setText(msg)

    def isComplete(self) -> bool:
        return bool(self.wiz.captures) and len(self.wiz.captures) >= self.progress.maximum()

    def stop(self) -> None:
        if self.worker_thread is not None:
            self.worker_thread.stop()
            self.worker_thread = None

    def cleanupPage(self) -> None:
        self.stop()
        self.captures = []
        self.wiz.captures = []


class CalibratePage(QWizardPage):
    """Security level and threshold from the FAR table and the new anchors."""

    def __init__(self, wiz: EnrolWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("Security level")
        lay = QVBoxLayout(self)
        self.panel = CalibrationPanel()
        lay.addWidget(self.panel)
        self.error = QLabel()
        _error_style(self.error)
        lay.addWidget(self.error)

    def initializePage(self) -> None:
        self.error.setText("")
        try:
            self.wiz.build_template()
            t = self.wiz.template
            assert t is not None
            m, table, genuine = service.calibration_inputs(t, self.wiz.pipe_factory())
            self.panel.set_data(table, len(t), genuine, t.security_level, matcher=m)
        except Exception as e:
            self.error.setText(plain_message(e))
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.panel.choice is not None and not self.error.text()

    def validatePage(self) -> bool:
        self.wiz.choice = self.panel.choice
        return self.wiz.choice is not None


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
            _plain_style(self.outcome)
            if pv.problem is not None:
                _error_style(self.outcome)
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
        _plain_style(self.outcome)
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
            _plain_style(self.outcome)
        else:
            _error_style(self.outcome)
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


class FinishPage(QWizardPage):
    def __init__(self, wiz: EnrolWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("Ready")
        lay = QVBoxLayout(self)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.error = QLabel()
        _error_style(self.error)
        lay.addWidget(self.error)
        self.setFinalPage(True)

    def initializePage(self) -> None:
        t, ch = self.wiz.template, self.wiz.choice
        self.error.setText("")
        if t is None or ch is None:
            return
        watcher = self.wiz.enable_page.watcher.isChecked()
        camera = self.wiz.camera_to_save()
        camera_text = (
            "" if camera is None else f" Face unlock will use this camera from now on: {camera}."
        )
        self.summary.setText(
            f"{len(t)} anchors for {t.user} (appearance “{self.wiz.label}” added), security "
            f"level {ch.level} (threshold {ch.threshold:.3f}). Unlocking the locked session "
            f"with your face: {'on' if watcher else 'off'}.{camera_text}\n\nPress Finish to "
            f"save your encrypted template to {self.wiz.store.path(t.user)}. Then try it with "
            "“Test recognition…” in the tray menu."
        )

    def validatePage(self) -> bool:
        try:
            self.wiz.save()
        except Exception as e:
            self.error.setText("Could not save: " + plain_message(e))
            return False
        return True


class EnrolWizard(QWizard):
    """Enrol (or add an appearance for) ``user``.

    store/cfg: injectable for tests; source_spec: the source to preselect (a camera index,
    a video file or an image folder); anchors: how many to capture (default
    ``cfg.enrol.anchors``); label: the appearance name; replace: start a new template
    instead of adding to an existing one; pipe_factory: returns the Pipeline;
    min_interval: at most one frame per this many seconds (preview pacing); config_path:
    where the watcher switch and the chosen camera are written at Finish (default: the
    user's config file); elevate: the privilege-escalation prefix of the login-screen step
    (default :func:`default_elevate`);
    system_root: ``--root`` of that step (tests; "/" is the real system);
    realtime: play a video file or image folder at its own frame rate, as a camera (False:
    as fast as it decodes, for tests where pacing is not the point; the capture's timing
    follows the frames' timestamps either way); enrol_overrides: EnrolParams fields to
    change (tests: a shorter ``pose_timeout``).

    Adding an appearance (an existing template, not ``replace``) first verifies the owner
    live through the normal authentication path, and every new anchor must match the
    template at its threshold, or the whole appearance is refused.
    """

    def __init__(
        self,
        store: TemplateStore,
        cfg: Config,
        *,
        user: str | None = None,
        source_spec: str | None = None,
        anchors: int | None = None,
        label: str = "default",
        replace: bool = False,
        pipe_factory: Callable[[], Any] | None = None,
        min_interval: float = 0.0,
        config_path: str | Path | None = None,
        elevate: Sequence[str] | None = None,
        system_root: str = "/",
        realtime: bool = True,
        enrol_overrides: dict[str, Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.realtime = realtime
        self.enrol_overrides = dict(enrol_overrides or {})
        self.capture_summary = ""
        self.store = store
        self.cfg = cfg
        self.start_camera = cfg.camera.source  # never written unless another is chosen
        self.config_path = config_path
        self.elevate = list(elevate) if elevate is not None else default_elevate()
        self.system_root = system_root
        self.user = user or service.current_user()
        self.initial_spec = source_spec
        self.source_spec: str | None = source_spec
        self.anchors = anchors if anchors is not None else cfg.enrol.anchors
        self.label = label
        self.replace = replace
        self.pipe_factory: Callable[[], Any] = pipe_factory or (lambda: service.pipeline_for(cfg))
        self.min_interval = min_interval
        self.captures: list[Capture] = []
        self.template: Template | None = None
        self.new_anchors: list[Anchor] = []
        self.choice: cal.ThresholdChoice | None = None
        self.saved_path: Path | None = None
        self.setWindowTitle(
            "FaceUnlock: replace your face" if replace and store.exists(self.user)
            else "FaceUnlock: enrol your face"
        )
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.pages: dict[int, QWizardPage] = {
            PAGE_WELCOME: WelcomePage(self),
            PAGE_CAMERA: CameraPage(self),
            PAGE_CAPTURE: CapturePage(self),
            PAGE_CALIBRATE: CalibratePage(self),
            PAGE_ENABLE: EnablePage(self),
            PAGE_FINISH: FinishPage(self),
        }
        for pid, page in self.pages.items():
            self.setPage(pid, page)
        self.setStartId(PAGE_WELCOME)
        # the preview runs whenever the camera page is shown, forwards or back
        self.currentIdChanged.connect(self._page_changed)
        self.resize(720, 600)

    def source_factory(self, spec: str, *, preview: bool, loop: bool = True
                       ) -> Callable[[], FrameSource]:
        """The source ``spec`` as a camera: a video file or image folder loops (a camera does
        not end) and plays in real time unless ``realtime`` is off."""
        c = self.cfg.camera
        live = dict(service.LIVE) if self.realtime else {}

        def build() -> FrameSource:
            return make_source(
                spec, width=c.width, height=c.height, fps=c.fps, rotation=c.rotation,
                loop=preview or loop, **live,
            )

        return build

    def enrol_params(self) -> EnrolParams:
        return service.enrol_params(self.cfg, self.anchors, **self.enrol_overrides)

    def adding(self) -> bool:
        """True when the capture adds an appearance to the owner's existing template."""
        return self.store.exists(self.user) and not self.replace

    def owner_check(self, spec: str) -> Callable[[Any], tuple[Any, float]]:
        """For the capture worker: verify the owner live, then the template's Matcher and
        threshold (every new anchor must match them)."""
        build = self.source_factory(spec, preview=False, loop=False)

        def check(pipe: Any) -> tuple[Any, float]:
            service.verify_owner(self.store, self.user, self.cfg, build(), pipe)
            t = self.store.load(self.user, expected_model_sha256=pipe.encoder.sha256)
            return service.matcher(t, pipe), service.owner_threshold(t, pipe)

        return check

    def _page_changed(self, pid: int) -> None:
        if pid == PAGE_CAMERA:
            self.camera_page._restart()

    @property
    def camera_page(self) -> CameraPage:
        page = self.pages[PAGE_CAMERA]
        assert isinstance(page, CameraPage)
        return page

    def build_template(self) -> None:
        """The template to save: the existing one plus the new anchors (unless replace)."""
        pipe = self.pipe_factory()
        sha = pipe.encoder.sha256
        if self.adding():
            t = self.store.load(self.user, expected_model_sha256=sha)
            # the capture checked each anchor already; this refuses a template changed since
            service.check_appearance(t, pipe, np.stack([c.embedding for c in self.captures]))
        else:
            t = Template(
                user=self.user, model_sha256=sha, security_level=self.cfg.auth.security_level
            )
        self.new_anchors = [
            Anchor.new(
                c.embedding,
                c.thumbnail,
                label=self.label,
                quality={**c.quality, "pose_" + c.pose: 1.0},
            )
            for c in self.captures
        ]
        t.add_anchors(self.new_anchors)
        self.template = t

    def save(self) -> Path:
        t, ch = self.template, self.choice
        if t is None or ch is None:
            raise RuntimeError("nothing to save: the wizard is not complete")
        def add(current: Template | None) -> Template:
            # re-read under the store's lock: what another enrolment saved meanwhile is kept
            target = t
            if current is not None:
                target = current
                known = {a.id for a in current.anchors}
                target.add_anchors(a for a in self.new_anchors if a.id not in known)
            target.threshold = ch.threshold
            target.security_level = ch.level
            target.calibration = ch.to_json()
            return target

        self.template = self.store.update(
            self.user, add, expected_model_sha256=t.model_sha256, replace=self.replace
        )
        self.saved_path = self.store.path(self.user)
        self.save_config_choices()
        return self.saved_path

    @property
    def enable_page(self) -> EnablePage:
        page = self.pages[PAGE_ENABLE]
        assert isinstance(page, EnablePage)
        return page

    def camera_to_save(self) -> str | None:
        """The Camera page's choice when it is to be written at Finish: it differs from the
        camera the wizard started with (so an untouched ``--camera`` override of this run is
        never saved) and from ``camera.source`` in the config file. Else None."""
        from faceunlock.ui.camera_choice import same_source

        spec = self.source_spec
        if spec is None or same_source(spec, self.start_camera):
            return None
        try:
            on_disk = load_config(self.config_path).camera.source
        except FaceUnlockError:
            on_disk = None  # an unreadable file: save_config_choices reports it
        return None if same_source(spec, on_disk) else spec

    def save_config_choices(self) -> bool:
        """Write the Enable page's watcher switch and the Camera page's camera when they
        differ from the config the wizard started with (True when written), in one atomic
        write. The file is re-read first, so only those keys change."""
        changes: dict[str, str] = {}
        want = self.enable_page.watcher.isChecked()
        if want != self.cfg.watcher.enabled:
            changes["watcher.enabled"] = "true" if want else "false"
        camera = self.camera_to_save()
        if camera is not None:
            changes["camera.source"] = camera
        if not changes:
            return False
        on_disk = load_config(self.config_path)
        for key, value in changes.items():
            on_disk = config_set(on_disk, key, value)
        save_config(on_disk, self.config_path)
        for key, value in changes.items():
            self.cfg = config_set(self.cfg, key, value)
        return True

    def stop_workers(self) -> None:
        for page in self.pages.values():
            stop = getattr(page, "stop", None)
            if stop is not None:
                stop()

    def done(self, result: int) -> None:
        self.stop_workers()
        super().done(result)

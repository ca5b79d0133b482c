"""The Capture page: the guided capture (pose prompt, progress per pose, thumbnails)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from faceunlock.engine.enrolment import Capture, EnrolmentSession
from faceunlock.ui.widgets import PreviewLabel, to_pixmap
from faceunlock.ui.wizard.common import error_style
from faceunlock.ui.workers import EnrolWorker, FramePacket, WorkerThread

if TYPE_CHECKING:
    from faceunlock.ui.wizard.wizard import EnrolWizard


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
        self.progress.setFormat("picture %v of %m")
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
        adding = self.wiz.adding()
        self.feedback.setText(
            f"First, look at the camera: FaceUnlock checks that you are {self.wiz.user}, "
            "the enrolled owner…" if adding else "Starting the camera…"
        )
        worker = EnrolWorker(
            self.wiz.source_factory(spec, preview=False),
            self.wiz.pipe_factory,
            params,
            min_interval=self.wiz.min_interval,
        )
        if adding:  # the owner check's head turn (liveness.level = active) shows here
            worker.owner_check = self.wiz.owner_check(spec, on_prompt=worker.prompt.emit)
            worker.prompt.connect(self.instruction.setText)
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
            error_style(self.feedback)
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
                    "pictures. Press Start again, or go Back and pick another source."
                )
            self.retry.setVisible(True)

    def _error(self, msg: str) -> None:
        error_style(self.feedback)
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



"""The Camera page: pick the source and check the picture (a live preview while shown)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QVBoxLayout, QWizardPage

from faceunlock.ui.widgets import PreviewLabel
from faceunlock.ui.wizard.common import PAGE_CAMERA, error_style
from faceunlock.ui.workers import CameraWorker, FramePacket, WorkerThread

if TYPE_CHECKING:
    from faceunlock.ui.wizard.wizard import EnrolWizard

OTHER_SOURCE = "__other__"
OTHER_FOLDER = "__folder__"


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
            error_style(self.indicator)
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
        error_style(self.indicator)
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



"""Dialogs opened from the tray: Settings, Test recognition, Recalibrate threshold."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QTimer
from PyQt6.QtGui import QShowEvent
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from faceunlock.app import service
from faceunlock.config import SECURITY_LEVELS, Config, config_set, load_config, save_config
from faceunlock.engine import calibration as cal
from faceunlock.engine.cohort import Matcher
from faceunlock.engine.pipeline import FacePipeline
from faceunlock.engine.templates import Template, TemplateStore
from faceunlock.errors import FaceUnlockError
from faceunlock.ui.camera_choice import CameraKindLabel, listed_spec, source_items
from faceunlock.ui.widgets import CalibrationPanel, PreviewLabel
from faceunlock.ui.workers import AuthTestWorker, FramePacket, WorkerThread, plain_message


def _error_label() -> QLabel:
    lab = QLabel()
    lab.setObjectName("error")
    lab.setWordWrap(True)
    lab.setStyleSheet("color: #c02020;")
    return lab


def _add_buttons(dialog: QDialog, lay: QVBoxLayout,
                 kinds: QDialogButtonBox.StandardButton) -> QDialogButtonBox:
    """The dialog's button row at the end of ``lay``: its accept role accepts the dialog, its
    reject role rejects it."""
    buttons = QDialogButtonBox(kinds)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    lay.addWidget(buttons)
    return buttons


class SettingsDialog(QDialog):
    """Edit a few keys of the config file; invalid values are refused with the key named.

    ``cfg``: the running config, whose values the fields show (its ``camera.source`` may be
    a ``--camera`` override of this run). OK writes only the fields the user changed, onto
    the config file as read at that moment (``config_path``, default the user's config
    file), so other keys and an untouched run-only camera never reach the file.
    ``config`` is then the running config: the file's, with this run's camera kept unless
    the camera field was changed."""

    def __init__(
        self, cfg: Config, config_path: str | Path | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("FaceUnlock settings")
        self.config = cfg
        self.config_path = config_path
        lay = QVBoxLayout(self)
        form = QFormLayout()
        # the cameras by name (infrared ones labelled), or any source typed in
        self.camera_kind = CameraKindLabel()
        self.source = QComboBox()
        self.source.setEditable(True)
        self.source.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        # a long video path must not widen the dialog past the screen (the box scrolls)
        self.source.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.source.setMinimumContentsLength(24)
        for label, spec in source_items(self.camera_kind.devices, cfg.camera.source):
            self.source.addItem(label, spec)
        current = listed_spec(self.camera_kind.devices, cfg.camera.source)
        self.source.setCurrentIndex(max(self.source.findData(current), 0))
        self.source.setToolTip("A camera, or its index (0), /dev/videoN, a video file or a folder")
        self.source.currentTextChanged.connect(
            lambda _t: self.camera_kind.set_spec(self.source_spec())
        )
        self.level = QComboBox()
        self.level.addItems(SECURITY_LEVELS)
        self.level.setCurrentText(cfg.auth.security_level)
        self.timeout = QLineEdit(f"{cfg.auth.timeout:g}")
        self.watcher = QCheckBox("Unlock the lock screen with my face")
        self.watcher.setChecked(cfg.watcher.enabled)
        self.snapshots = QCheckBox("Keep a picture of failed attempts")
        self.snapshots.setChecked(cfg.auth.snapshots)
        form.addRow("&Camera source:", self.source)
        form.addRow("", self.camera_kind)
        self.camera_kind.set_spec(self.source_spec())
        form.addRow("&Security level:", self.level)
        form.addRow("&Timeout (seconds):", self.timeout)
        form.addRow("", self.watcher)
        form.addRow("", self.snapshots)
        lay.addLayout(form)
        self.error = _error_label()
        lay.addWidget(self.error)
        self.buttons = _add_buttons(
            self, lay, QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.shown = self.values()  # what the fields showed: only changes are written

    def source_spec(self) -> str:
        """The chosen camera's spec, or the text typed in the source box."""
        text = self.source.currentText()
        i = self.source.findText(text)
        data = self.source.itemData(i) if i >= 0 else None
        return text if data is None else str(data)

    def values(self) -> dict[str, str]:
        return {
            "camera.source": self.source_spec(),
            "auth.security_level": self.level.currentText(),
            "auth.timeout": self.timeout.text(),
            "watcher.enabled": "true" if self.watcher.isChecked() else "false",
            "auth.snapshots": "true" if self.snapshots.isChecked() else "false",
        }

    def changes(self) -> dict[str, str]:
        """The fields the user changed (key -> new text)."""
        return {k: v for k, v in self.values().items() if v != self.shown.get(k)}

    def validated(self, base: Config | None = None) -> Config | None:
        """``base`` (default: the running config) with the changed fields set, or None (with
        the message shown) when a value is invalid."""
        cfg = self.config if base is None else base
        try:
            for key, text in self.changes().items():
                cfg = config_set(cfg, key, text)
        except FaceUnlockError as e:
            self.error.setText(str(e))
            return None
        self.error.setText("")
        return cfg

    def accept(self) -> None:
        if self.validated() is None:
            return
        try:
            on_disk = self.validated(load_config(self.config_path))
            if on_disk is None:
                return
            save_config(on_disk, self.config_path)
        except FaceUnlockError as e:
            self.error.setText(f"Could not save the settings: {e}")
            return
        if "camera.source" not in self.changes():
            on_disk = config_set(on_disk, "camera.source", self.config.camera.source)
        self.config = on_disk
        super().accept()


class RecognitionTestDialog(QDialog):
    """Live recognition test: per frame distance, threshold and decision."""

    def __init__(
        self,
        store: TemplateStore,
        cfg: Config,
        user: str,
        *,
        source_spec: str | None = None,
        pipe_factory: Callable[[], FacePipeline] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("FaceUnlock: test recognition")
        lay = QVBoxLayout(self)
        self.preview = PreviewLabel()
        lay.addWidget(self.preview, 1)
        self.result_label = QLabel("Starting the camera…")
        self.result_label.setObjectName("result")
        lay.addWidget(self.result_label)
        self.error = _error_label()
        lay.addWidget(self.error)
        _add_buttons(self, lay, QDialogButtonBox.StandardButton.Close)
        self.packets = 0
        self.worker_thread: WorkerThread | None = None
        pipe_factory = pipe_factory or (lambda: service.pipeline_for(cfg))
        try:
            pipe = pipe_factory()
            t = store.load(user, expected_model_sha256=pipe.encoder.sha256)
        except Exception as e:
            self.error.setText(plain_message(e))
            return
        thr = t.threshold if t.threshold is not None else pipe.threshold
        spec = source_spec if source_spec is not None else cfg.camera.source
        worker = AuthTestWorker(
            lambda: service.source_for(cfg, spec, **service.LIVE), pipe_factory,
            service.matcher(t, pipe), thr,
        )
        worker.frame.connect(self._frame)
        worker.error.connect(self.error.setText)
        self.worker_thread = WorkerThread(worker)
        self.worker_thread.start()

    def _frame(self, pkt: FramePacket) -> None:
        self.packets += 1
        self.preview.show_frame(pkt.image, pkt.boxes, good=bool(pkt.match))
        if pkt.dark:
            text = "Too dark"
        elif pkt.distance is None or not math.isfinite(pkt.distance):
            text = "No face"
        else:
            verdict = "recognised" if pkt.match else "not recognised"
            text = (
                f"distance {pkt.distance:.3f} (threshold {pkt.threshold:.3f}): {verdict}, "
                f"{pkt.ms:.0f} ms"
            )
        self.result_label.setText(text)

    def done(self, r: int) -> None:
        if self.worker_thread is not None:
            self.worker_thread.stop()
        super().done(r)


class RecalibrateDialog(QDialog):
    """Choose another security level for the enrolled anchors and save the new threshold.

    "Check with the camera" first runs the recognition-test worker for up to ``live_seconds``
    (or ``live_max_frames`` frames, or until a video file or image folder ends, whichever comes
    first; the result says how long it really took) and adds each frame's distance to
    the anchors to the user's genuine distances. The threshold of each level still comes from
    the model's FAR table (the user's own data never loosens it); the expected false-reject
    rates, the warnings and the plot are recomputed from the new distances. Nothing is
    written until Save.
    """

    def __init__(
        self,
        store: TemplateStore,
        cfg: Config,
        user: str,
        *,
        source_spec: str | None = None,
        pipe_factory: Callable[[], FacePipeline] | None = None,
        live_seconds: float = 10.0,
        live_max_frames: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("FaceUnlock: security level")
        self.store = store
        self.cfg = cfg
        self.template: Template | None = None
        self.pipe_factory: Callable[[], FacePipeline] = pipe_factory or (
            lambda: service.pipeline_for(cfg)
        )
        self.source_spec = source_spec if source_spec is not None else cfg.camera.source
        self.live_seconds = live_seconds
        self.live_max_frames = live_max_frames
        self.table: cal.FarTable | None = None
        self.anchor_genuine = np.zeros(0)
        self.matcher: Matcher | None = None
        self.live: list[float] = []
        self.live_frames = 0
        self.live_started: float | None = None
        self.live_last: float | None = None  # when the last frame of the check came
        self.worker_thread: WorkerThread | None = None
        lay = QVBoxLayout(self)
        self.panel = CalibrationPanel()
        lay.addWidget(self.panel)
        self.live_button = QPushButton(f"&Check with the camera (up to {live_seconds:g} s)")
        self.live_button.setObjectName("live_check")
        self.live_button.clicked.connect(self.start_live)
        lay.addWidget(self.live_button)
        self.live_status = QLabel(
            "Optional: look at the camera as you usually sit, and the rates above are measured "
            "on you now."
        )
        self.live_status.setObjectName("live_status")
        self.live_status.setWordWrap(True)
        lay.addWidget(self.live_status)
        self.preview = PreviewLabel()
        self.preview.setVisible(False)
        lay.addWidget(self.preview)
        self.error = _error_label()
        lay.addWidget(self.error)
        self.buttons = buttons = _add_buttons(
            self, lay,
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel,
        )
        save = buttons.button(QDialogButtonBox.StandardButton.Save)
        assert save is not None
        self.save_button = save
        self.threshold = 0.0
        try:
            pipe = self.pipe_factory()
            t = store.load(user, expected_model_sha256=pipe.encoder.sha256)
            # scored the way the new calibration will be (cohort-normalised where shipped)
            self.matcher, self.table, self.anchor_genuine = service.calibration_inputs(t, pipe)
            self.panel.set_data(
                self.table, len(t), self.anchor_genuine, t.security_level, matcher=self.matcher
            )
            self.template = t
            self.threshold = t.threshold if t.threshold is not None else float(pipe.threshold)
        except Exception as e:
            self.error.setText(plain_message(e))
            self.live_button.setEnabled(False)

    # ---- the live check

    def start_live(self) -> None:
        """Start measuring (non-blocking); the worker ends after the time or frame budget."""
        t = self.template
        if t is None or self.worker_thread is not None:
            return
        self.live, self.live_frames, self.live_started, self.live_last = [], 0, None, None
        self.error.setText("")
        cfg, spec = self.cfg, self.source_spec
        ch, m = self.panel.choice, self.matcher
        if m is None:
            return
        worker = AuthTestWorker(
            lambda: service.source_for(cfg, spec, **service.LIVE), self.pipe_factory, m,
            ch.threshold if ch is not None else self.threshold,
        )
        worker.frame.connect(self._live_frame)
        worker.error.connect(self.error.setText)
        worker.finished.connect(self._live_finished)
        self.worker_thread = WorkerThread(worker)
        self.live_button.setEnabled(False)
        self.save_button.setEnabled(False)
        self.preview.setVisible(True)
        self.live_status.setText("Starting the camera…")
        self.worker_thread.start()

    @property
    def live_running(self) -> bool:
        return self.worker_thread is not None

    def _live_frame(self, pkt: FramePacket) -> None:
        if self.worker_thread is None:
            return
        now = time.monotonic()
        if self.live_started is None:
            self.live_started = now
        self.live_last = now
        self.live_frames += 1
        if pkt.distance is not None and math.isfinite(pkt.distance):
            self.live.append(float(pkt.distance))
        self.preview.show_frame(pkt.image, pkt.boxes, good=bool(pkt.match))
        left = max(0.0, self.live_seconds - (now - self.live_started))
        self.live_status.setText(
            f"Measuring: look at the camera… {len(self.live)} of {self.live_frames} frames "
            f"showed a face, {left:.0f} s left"
        )
        full = self.live_max_frames is not None and self.live_frames >= self.live_max_frames
        if full or left <= 0.0:
            self.worker_thread.worker.stop()

    def _live_finished(self) -> None:
        self.stop_live()  # the worker has returned: this only joins its thread
        self.live_button.setEnabled(self.template is not None)
        self.live_button.setText("&Check again")
        self.save_button.setEnabled(True)
        # the check is over: its preview goes, so the dialog shrinks back to fit the screen
        self.preview.setVisible(False)
        QTimer.singleShot(0, self.fit_contents)
        t = self.template
        if t is None or self.table is None:
            return
        if not self.live:
            self.live_status.setText(
                "No face was seen during the check, so nothing was measured. Check the camera "
                "and the light, then try again."
            )
            return
        live = np.asarray(self.live, np.float64)
        genuine = np.concatenate([self.anchor_genuine, live])
        self.panel.set_data(self.table, len(t), genuine, self.panel.level, matcher=self.matcher)
        self.live_status.setText(
            f"Measured {live.size} frames with your face in {self.live_duration():.0f} s "
            f"(typical score {float(np.median(live)):.3f}). The rates above now include them; "
            "choose a level and press Save."
        )

    def fit_contents(self) -> None:
        """Resize to the height the contents need at the current width: the wrapped labels
        need more lines than a top-level window's minimum size counts, and a dialog short of
        them overlaps the plot with its caption."""
        lay = self.layout()
        if lay is None:
            return
        self.adjustSize()
        w = self.width()
        h = lay.totalHeightForWidth(w) if lay.hasHeightForWidth() else -1
        self.resize(w, max(h, lay.totalMinimumSize().height()))

    def showEvent(self, event: QShowEvent | None) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self.fit_contents)

    def live_duration(self) -> float:
        """Seconds from the first to the last frame of the last check (0 before one)."""
        if self.live_started is None or self.live_last is None:
            return 0.0
        return self.live_last - self.live_started

    def stop_live(self) -> None:
        if self.worker_thread is not None:
            thread, self.worker_thread = self.worker_thread, None
            thread.stop()

    def done(self, r: int) -> None:
        self.stop_live()
        super().done(r)

    def accept(self) -> None:
        if self.live_running:
            return
        ch, t = self.panel.choice, self.template
        if ch is None or t is None:
            return
        def recalibrate(current: Template | None) -> Template:
            # re-read under the store's lock: anchors added or removed meanwhile are kept
            target = current if current is not None else t
            target.threshold = ch.threshold
            target.security_level = ch.level
            target.calibration = ch.to_json()
            return target

        try:
            self.template = self.store.update(
                t.user, recalibrate, expected_model_sha256=t.model_sha256
            )
        except Exception as e:
            self.error.setText("Could not save: " + plain_message(e))
            return
        super().accept()

"""Dialogs opened from the tray: Settings, Test recognition, Recalibrate threshold."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from faceunlock.config import SECURITY_LEVELS, Config, config_set, save_config
from faceunlock.engine import calibration as cal
from faceunlock.engine import service
from faceunlock.engine.templates import Template, TemplateStore
from faceunlock.errors import FaceUnlockError
from faceunlock.ui.widgets import CalibrationPanel, PreviewLabel
from faceunlock.ui.workers import AuthTestWorker, FramePacket, WorkerThread, plain_message


def _error_label() -> QLabel:
    lab = QLabel()
    lab.setObjectName("error")
    lab.setWordWrap(True)
    lab.setStyleSheet("color: #c02020;")
    return lab


class SettingsDialog(QDialog):
    """Edit a few keys of the config file; invalid values are refused with the key named.

    ``config`` is the Config after a successful OK; ``config_path`` where it is written
    (default: the user's config file)."""

    def __init__(
        self, cfg: Config, config_path: str | Path | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("FaceUnlock settings")
        self.config = cfg
        self.config_path = config_path
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.source = QLineEdit(cfg.camera.source)
        self.source.setToolTip("A camera index (0), /dev/videoN, a video file or an image folder")
        self.level = QComboBox()
        self.level.addItems(SECURITY_LEVELS)
        self.level.setCurrentText(cfg.auth.security_level)
        self.timeout = QLineEdit(f"{cfg.auth.timeout:g}")
        self.watcher = QCheckBox("Unlock the lock screen with my face")
        self.watcher.setChecked(cfg.watcher.enabled)
        self.snapshots = QCheckBox("Keep a picture of failed attempts")
        self.snapshots.setChecked(cfg.auth.snapshots)
        form.addRow("&Camera source:", self.source)
        form.addRow("&Security level:", self.level)
        form.addRow("&Timeout (seconds):", self.timeout)
        form.addRow("", self.watcher)
        form.addRow("", self.snapshots)
        lay.addLayout(form)
        self.error = _error_label()
        lay.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.buttons = buttons

    def values(self) -> dict[str, str]:
        return {
            "camera.source": self.source.text(),
            "auth.security_level": self.level.currentText(),
            "auth.timeout": self.timeout.text(),
            "watcher.enabled": "true" if self.watcher.isChecked() else "false",
            "auth.snapshots": "true" if self.snapshots.isChecked() else "false",
        }

    def validated(self) -> Config | None:
        """The edited Config, or None (with the message shown) when a value is invalid."""
        cfg = self.config
        try:
            for key, text in self.values().items():
                cfg = config_set(cfg, key, text)
        except FaceUnlockError as e:
            self.error.setText(str(e))
            return None
        self.error.setText("")
        return cfg

    def accept(self) -> None:
        cfg = self.validated()
        if cfg is None:
            return
        try:
            save_config(cfg, self.config_path)
        except FaceUnlockError as e:
            self.error.setText(f"Could not save the settings: {e}")
            return
        self.config = cfg
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
        pipe_factory: Callable[[], Any] | None = None,
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
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
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
            lambda: service.source_for(cfg, spec), pipe_factory, t.embeddings(), thr
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
    """Choose another security level for the enrolled anchors and save the new threshold."""

    def __init__(
        self,
        store: TemplateStore,
        cfg: Config,
        user: str,
        *,
        pipe_factory: Callable[[], Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("FaceUnlock: security level")
        self.store = store
        self.template: Template | None = None
        lay = QVBoxLayout(self)
        self.panel = CalibrationPanel()
        lay.addWidget(self.panel)
        self.error = _error_label()
        lay.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        try:
            pipe = (pipe_factory or (lambda: service.pipeline_for(cfg)))()
            t = store.load(user, expected_model_sha256=pipe.encoder.sha256)
            emb = t.embeddings()
            genuine = cal.anchor_genuine_distances(emb) if len(emb) >= 2 else np.zeros(0)
            self.panel.set_data(service.far_table(pipe), len(emb), genuine, t.security_level)
            self.template = t
        except Exception as e:
            self.error.setText(plain_message(e))

    def accept(self) -> None:
        ch, t = self.panel.choice, self.template
        if ch is None or t is None:
            return
        t.threshold = ch.threshold
        t.security_level = ch.level
        t.calibration = ch.to_json()
        try:
            self.store.save(t)
        except Exception as e:
            self.error.setText("Could not save: " + plain_message(e))
            return
        super().accept()

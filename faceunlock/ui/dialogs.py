"""Dialogs opened from the tray: Settings, Test recognition, Recalibrate threshold."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QCoreApplication, QEvent, QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QShowEvent
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from faceunlock.app import service
from faceunlock.config import SECURITY_LEVELS, Config, config_set, load_config, save_config
from faceunlock.engine import calibration as cal
from faceunlock.engine.auth import AuthParams, AuthResult
from faceunlock.engine.cohort import Matcher
from faceunlock.engine.pipeline import FacePipeline
from faceunlock.engine.templates import Template, TemplateStore
from faceunlock.errors import AuthStatus, FaceUnlockError, InputError, TemplateNotFoundError
from faceunlock.ui.camera_choice import CameraKindLabel, listed_spec, source_items
from faceunlock.ui.password import confirm_password
from faceunlock.ui.widgets import (
    LEVEL_DESCRIPTIONS,
    LIVENESS_DESCRIPTIONS,
    LIVENESS_NAMES,
    LIVENESS_SHORT,
    CalibrationPanel,
    PreviewLabel,
)
from faceunlock.ui.workers import (
    AttemptSetup,
    AttemptWorker,
    AuthTestWorker,
    FramePacket,
    WorkerThread,
    plain_message,
)


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
    Each security level and each photo-check level (``liveness.level``) is described in the
    wizard's words (:data:`LEVEL_DESCRIPTIONS`, :data:`LIVENESS_SHORT` with
    :data:`LIVENESS_DESCRIPTIONS` as tooltip).
    Given ``store`` and ``user``, "Your face" lists the appearances: one can be removed, or
    all the face data deleted, each after a question (``ask(title, text, button)``: asks it,
    True when the button that does it was pressed; tests answer it); deleting then asks for
    the user's password (``confirm(user, reason)``, default
    :func:`~faceunlock.ui.password.confirm_password`). ``faceDataChanged`` then tells the
    tray. These act at once, not at OK.

    ``cfg``: the running config, whose values the fields show (its ``camera.source`` may be
    a ``--camera`` override of this run). OK writes only the fields the user changed, onto
    the config file as read at that moment (``config_path``, default the user's config
    file), so other keys and an untouched run-only camera never reach the file.
    ``config`` is then the running config: the file's, with this run's camera kept unless
    the camera field was changed."""

    faceDataChanged = pyqtSignal()

    def __init__(
        self,
        cfg: Config,
        config_path: str | Path | None = None,
        parent: QWidget | None = None,
        *,
        store: TemplateStore | None = None,
        user: str | None = None,
        ask: Callable[[str, str, str], bool] | None = None,
        confirm: Callable[[str, str], bool] | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("FaceUnlock settings")
        self.store = store
        self.user = user
        self.ask = ask or self._ask
        self.confirm = confirm or (
            lambda user, reason: confirm_password(user, reason, parent=self)
        )
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
        self.level_description = QLabel()
        self.level_description.setObjectName("level_description")
        self.level_description.setWordWrap(True)
        self.level.currentTextChanged.connect(self._describe_level)
        self._describe_level(self.level.currentText())
        self.liveness = QComboBox()
        self.liveness.setObjectName("liveness_level")
        for lv, name in LIVENESS_NAMES.items():
            self.liveness.addItem(name, lv)
        self.liveness.setCurrentIndex(max(self.liveness.findData(cfg.liveness.level), 0))
        self.liveness_description = QLabel()
        self.liveness_description.setObjectName("liveness_description")
        self.liveness_description.setWordWrap(True)
        self.liveness.currentIndexChanged.connect(lambda _i: self._describe_liveness())
        self._describe_liveness()
        self.timeout = QLineEdit(f"{cfg.auth.timeout:g}")
        self.watcher = QCheckBox("Unlock the lock screen with my face")
        self.watcher.setChecked(cfg.watcher.enabled)
        self.snapshots = QCheckBox("Keep a picture of failed attempts")
        self.snapshots.setChecked(cfg.auth.snapshots)
        form.addRow("&Camera source:", self.source)
        form.addRow("", self.camera_kind)
        self.camera_kind.set_spec(self.source_spec())
        form.addRow("&Security level:", self.level)
        form.addRow("", self.level_description)
        form.addRow("&Photo check:", self.liveness)
        form.addRow("", self.liveness_description)
        form.addRow("&Timeout (seconds):", self.timeout)
        form.addRow("", self.watcher)
        form.addRow("", self.snapshots)
        lay.addLayout(form)
        self.face_box = self._face_section()
        lay.addWidget(self.face_box)
        self.face_box.setVisible(store is not None and user is not None)
        self.error = _error_label()
        lay.addWidget(self.error)
        self.buttons = _add_buttons(
            self, lay, QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.shown = self.values()  # what the fields showed: only changes are written
        self.refresh_appearances()

    # ---- the security level

    def _describe_level(self, level: str) -> None:
        """The wizard's words for ``level`` (the box names the level already)."""
        self.level_description.setText(LEVEL_DESCRIPTIONS.get(level, ""))

    def _describe_liveness(self) -> None:
        """The plain words for the chosen photo-check level (``liveness.level``): one short
        line, the wizard's full words as its tooltip and the box's."""
        level = str(self.liveness.currentData())
        self.liveness_description.setText(LIVENESS_SHORT.get(level, ""))
        self.liveness_description.setToolTip(LIVENESS_DESCRIPTIONS.get(level, ""))
        self.liveness.setToolTip(LIVENESS_DESCRIPTIONS.get(level, ""))

    # ---- your face: the appearances, remove one, delete all

    def _face_section(self) -> QGroupBox:
        box = QGroupBox("Your face")
        v = QVBoxLayout(box)
        self.appearances = QListWidget()
        self.appearances.setObjectName("appearances")
        self.appearances.setMaximumHeight(84)  # about three rows
        self.appearances.currentRowChanged.connect(lambda _r: self._update_face_buttons())
        v.addWidget(self.appearances)
        self.face_status = QLabel()
        self.face_status.setObjectName("face_status")
        self.face_status.setWordWrap(True)
        v.addWidget(self.face_status)
        row = QHBoxLayout()
        self.remove_button = QPushButton("&Remove appearance…")
        self.remove_button.setObjectName("remove_appearance")
        self.remove_button.clicked.connect(self.remove_appearance)
        self.delete_button = QPushButton("&Delete all face data…")
        self.delete_button.setObjectName("delete_face_data")
        self.delete_button.clicked.connect(self.delete_face_data)
        row.addWidget(self.remove_button)
        row.addWidget(self.delete_button)
        row.addStretch(1)
        v.addLayout(row)
        return box

    def _ask(self, title: str, text: str, button: str) -> bool:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text,
                          QMessageBox.StandardButton.Cancel, self)
        yes = box.addButton(button, QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is yes

    def labels(self) -> list[tuple[str, int]]:
        """(appearance name, pictures) of each appearance listed."""
        out = []
        for i in range(self.appearances.count()):
            item = self.appearances.item(i)
            assert item is not None
            out.append((str(item.data(Qt.ItemDataRole.UserRole)),
                        int(item.data(Qt.ItemDataRole.UserRole + 1))))
        return out

    def refresh_appearances(self) -> None:
        """List the template's appearances (none when there is no template)."""
        self.appearances.clear()
        self.face_status.setText("")
        if self.store is None or self.user is None:
            return
        if not self.store.exists(self.user):
            self.face_status.setText("No face data: face unlock is off until you enrol "
                                     "(FaceUnlock menu → Enrol…).")
            self._update_face_buttons()
            return
        try:
            t = self.store.load(self.user)
        except FaceUnlockError as e:
            self.face_status.setText(plain_message(e))
            self._update_face_buttons()
            return
        for label in t.labels():
            anchors = t.anchors_for(label)
            day = min(a.created for a in anchors)[:10]
            item = QListWidgetItem(f"{label} — {len(anchors)} pictures, added {day}")
            item.setData(Qt.ItemDataRole.UserRole, label)
            item.setData(Qt.ItemDataRole.UserRole + 1, len(anchors))
            self.appearances.addItem(item)
        self.appearances.setCurrentRow(0)
        self._update_face_buttons()

    def _update_face_buttons(self) -> None:
        n = self.appearances.count()
        self.remove_button.setEnabled(n > 1 and self.appearances.currentRow() >= 0)
        self.remove_button.setToolTip(
            "" if n != 1 else "Your only appearance: use “Delete all face data…” instead"
        )
        self.delete_button.setEnabled(
            self.store is not None and self.user is not None and self.store.exists(self.user)
        )

    def remove_appearance(self) -> bool:
        """Remove the selected appearance after asking; the threshold is chosen again for the
        anchors that are left, at the template's level. True when it was removed."""
        row = self.appearances.currentRow()
        if self.store is None or self.user is None or row < 0 or self.appearances.count() < 2:
            return False
        label, count = self.labels()[row]
        if not self.ask(
            "FaceUnlock: Remove appearance?",
            f"Remove the appearance “{label}” ({count} pictures)? FaceUnlock will no longer "
            "use these pictures to recognise you. This cannot be undone.",
            "Remove",
        ):
            return False
        store, user, cfg = self.store, self.user, self.config

        def remove(t: Template | None) -> Template:
            if t is None:
                raise TemplateNotFoundError(user, store.path(user))
            t.remove_label(label)
            if not t.anchors:
                raise InputError("that would remove every picture: delete all face data "
                                 "instead")
            if len(t.anchors) >= 2:
                service.calibrate_template(t, service.pipeline_for(cfg), t.security_level)
            return t

        try:
            store.update(user, remove)
        except FaceUnlockError as e:
            self.face_status.setText("Not removed: " + plain_message(e))
            return False
        self.refresh_appearances()
        self.face_status.setText(f"Removed “{label}”.")
        self.faceDataChanged.emit()
        return True

    def delete_face_data(self) -> bool:
        """Delete the template, its backup and its key after asking. True when deleted."""
        if self.store is None or self.user is None or not self.store.exists(self.user):
            return False
        if not self.ask(
            "FaceUnlock: Delete all face data?",
            "Delete all your face data (every appearance) from this computer? Face unlock "
            "stops until you enrol again; your password keeps working. This cannot be undone.",
            "Delete",
        ) or not self.confirm(self.user, "Deleting your face data cannot be undone."):
            return False
        try:
            self.store.delete(self.user, remove_key=True)
        except FaceUnlockError as e:
            self.face_status.setText("Not deleted: " + plain_message(e))
            return False
        self.refresh_appearances()
        self.face_status.setText("All your face data was deleted. Face unlock is off until "
                                 "you enrol again (FaceUnlock menu → Enrol…).")
        self.faceDataChanged.emit()
        return True

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
            "liveness.level": str(self.liveness.currentData()),
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


#: an attempt's outcome in words: (verdict, colour, what it means)
TEST_VERDICTS: dict[AuthStatus, tuple[str, str, str]] = {
    AuthStatus.OK: (
        "Recognised — this would unlock", "#1e7e34",
        "FaceUnlock saw your face and knew it: at the lock screen this attempt would unlock.",
    ),
    AuthStatus.NO_MATCH: (
        "Not recognised", "#c02020",
        "A face was seen, but it was not close enough to yours: this would not unlock, and at "
        "the lock screen you would type your password. Face the camera in good light and try "
        "again; if it keeps failing, add an appearance (glasses, a beard) or choose a more "
        "convenient security level.",
    ),
    AuthStatus.TIMEOUT: (
        "No face seen", "#b06000",
        "No face was found in time. Sit in front of the camera with your face well lit, and "
        "try again.",
    ),
    AuthStatus.TOO_DARK: (
        "No face seen", "#b06000",
        "The picture was too dark to see a face. Turn on a light or face a window, then try "
        "again.",
    ),
    AuthStatus.PRESENTATION_ATTACK: (
        "Face not accepted: this looks like a photo or a screen", "#c02020",
        "The face matched yours, but it looked like a photo or a screen (the photo check), so "
        "this would not unlock.",
    ),
}


def auth_params(cfg: Config) -> AuthParams:
    """The attempt parameters of ``cfg`` (those of the lock screen)."""
    a = cfg.auth
    return AuthParams(timeout=a.timeout, k=a.k, n=a.n, dark_level=a.dark_level,
                      dark_fraction=a.dark_fraction)


class RecognitionTestDialog(QDialog):
    """Test recognition: one attempt as at the lock screen (the same timeout, k-of-n frames and
    photo check; not counted as a failed try), with the camera's picture and the face box,
    then the result in plain words (:data:`TEST_VERDICTS`) and "Try again"."""

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
        self.store, self.cfg, self.user = store, cfg, user
        self.source_spec = source_spec if source_spec is not None else cfg.camera.source
        self.pipe_factory: Callable[[], FacePipeline] = pipe_factory or (
            lambda: service.pipeline_for(cfg)
        )
        lay = QVBoxLayout(self)
        intro = QLabel("Look at the camera as you would to unlock: this is one try, as at the "
                       "lock screen.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.preview = PreviewLabel()
        self.preview.setMinimumSize(QSize(400, 300))
        lay.addWidget(self.preview, 1)
        self.result_label = QLabel()
        self.result_label.setObjectName("result")
        self.result_label.setWordWrap(True)
        # the size in the style sheet too: a style sheet (the colour) resets a set font
        self._result_pt = max(self.font().pointSizeF(), 9.0) * 1.4
        lay.addWidget(self.result_label)
        self.explanation = QLabel()
        self.explanation.setObjectName("explanation")
        self.explanation.setWordWrap(True)
        lay.addWidget(self.explanation)
        #: the active challenge's prompt (liveness.level = active), while it is asked
        self.prompt_label = QLabel()
        self.prompt_label.setObjectName("prompt")
        self.prompt_label.setWordWrap(True)
        self.prompt_label.setStyleSheet(f"font-weight: bold; font-size: {self._result_pt:.1f}pt;"
                                        " color: #0050a0;")
        self.prompt_label.hide()
        lay.addWidget(self.prompt_label)
        self.error = _error_label()
        lay.addWidget(self.error)
        self.buttons = _add_buttons(self, lay, QDialogButtonBox.StandardButton.Close)
        self.try_again = QPushButton("&Try again")
        self.try_again.setObjectName("try_again")
        self.try_again.clicked.connect(self.start)
        self.buttons.addButton(self.try_again, QDialogButtonBox.ButtonRole.ActionRole)
        self.packets = 0
        self.attempts = 0
        self.outcome: AuthResult | None = None
        self.worker_thread: WorkerThread | None = None
        if not store.exists(user):
            self.error.setText(plain_message(TemplateNotFoundError(user, store.path(user))))
            self.try_again.setEnabled(False)
            return
        self.start()

    @property
    def running(self) -> bool:
        return self.worker_thread is not None

    def _setup(self, pipe: FacePipeline) -> AttemptSetup:
        """In the worker thread: the template and the attempt, as the lock screen makes them."""
        t = service.load_template(self.store, self.user, pipe)
        thr = t.threshold if t.threshold is not None else float(pipe.threshold)
        return (service.matcher(t, pipe), float(thr), auth_params(self.cfg),
                service.liveness_for(self.cfg, pipe))

    def start(self) -> None:
        """Start one attempt (non-blocking; nothing while one runs)."""
        if self.worker_thread is not None:
            return
        self.outcome = None
        self.packets = 0  # frames shown in this attempt
        self.attempts += 1
        self.error.setText("")
        self._set_prompt("")
        self._show_verdict("Looking for your face…", "", "Starting the camera…")
        cfg, spec = self.cfg, self.source_spec
        worker = AttemptWorker(
            lambda: service.source_for(cfg, spec, **service.LIVE), self.pipe_factory,
            self._setup,
        )
        worker.frame.connect(self._frame)
        worker.result.connect(self._result)
        worker.prompt.connect(self._set_prompt)
        worker.error.connect(self._error)
        worker.finished.connect(self._finished)
        self.worker_thread = WorkerThread(worker)
        self.try_again.setEnabled(False)
        self.worker_thread.start()

    def _show_verdict(self, verdict: str, colour: str, explanation: str) -> None:
        self.result_label.setText(verdict)
        self.result_label.setStyleSheet(
            f"font-weight: bold; font-size: {self._result_pt:.1f}pt;"
            + (f" color: {colour};" if colour else "")
        )
        self.explanation.setText(explanation)
        QTimer.singleShot(0, self.fit_contents)

    def fit_contents(self) -> None:
        """Grow to the height the wrapped words need at the current width (a top-level
        window's minimum counts one line per label, and the picture would cover the
        result)."""
        lay = self.layout()
        if lay is None:
            return
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)
        lay.activate()
        w = self.width()
        need = lay.totalHeightForWidth(w) if lay.hasHeightForWidth() else -1
        need = max(need, lay.totalMinimumSize().height())
        if self.height() < need:
            self.resize(w, need)

    def showEvent(self, event: QShowEvent | None) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self.fit_contents)

    def _frame(self, pkt: FramePacket) -> None:
        if self.worker_thread is None:
            return
        self.packets += 1
        self.preview.show_frame(pkt.image, pkt.boxes, good=bool(pkt.match))
        if self.outcome is None and not self.prompt_label.text():
            self.explanation.setText("Too dark to see a face…" if pkt.dark else
                                     "Look at the camera…")

    def _set_prompt(self, words: str) -> None:
        """Show (or, with "", hide) the challenge's prompt, as the lock screen would."""
        self.prompt_label.setText(words)
        self.prompt_label.setVisible(bool(words))
        if words:
            self.explanation.setText("Your face was recognised; now do as asked.")
        QTimer.singleShot(0, self.fit_contents)

    def _result(self, res: AuthResult) -> None:
        self._set_prompt("")
        self.outcome = res
        verdict, colour, words = TEST_VERDICTS.get(
            res.status, (res.message or "Not recognised", "#c02020", "")
        )
        if res.status == AuthStatus.PRESENTATION_ATTACK and res.liveness is not None \
                and "dim" in res.liveness.reasons:
            verdict = "Face not accepted: too dark for the photo check"
            words = ("The face matched yours, but the picture was too dark and grainy for the "
                     "photo check to tell a face from a photo, so this would not unlock. Turn "
                     "on a light or face a window, then try again.")
        elif res.status == AuthStatus.PRESENTATION_ATTACK and res.challenge is not None \
                and res.challenge.reason:
            asked = ("the eyes did not blink" if res.challenge.challenge.action == "blink"
                     else "the head did not turn")
            words = (f"The face matched yours and passed the photo check, but {asked} "
                     f"as asked ({res.challenge.reason}), so this would not unlock.")
        self._show_verdict(verdict, colour, words)
        best = res.best_distance
        self.explanation.setToolTip(
            f"{len(res.frames)} frames in {res.elapsed:.1f} s; closest score "
            + (f"{best:.3f}" if math.isfinite(best) else "none (no face)")
            + f", accepted at {res.threshold:.3f} or less"
            + ("" if res.liveness is None else "; photo check: "
               + ("passed" if res.liveness.live else "refused ("
                  + ", ".join(res.liveness.reasons) + ")"))
        )

    def _error(self, message: str) -> None:
        self._show_verdict("The test could not run", "#c02020", "")
        self.error.setText(message)

    def _finished(self) -> None:
        self.stop()  # the worker has returned: this only joins its thread
        self.try_again.setEnabled(True)

    def stop(self) -> None:
        if self.worker_thread is not None:
            thread, self.worker_thread = self.worker_thread, None
            thread.stop()

    def done(self, r: int) -> None:
        self.stop()
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
        # the raw threshold is a programmer's number: the plot marks it (as in the wizard)
        self.panel.threshold_label.hide()
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
            f"Measured {live.size} frames with your face in {self.live_duration():.0f} s. The "
            "rates above now include them; choose a level and press Save."
        )

    def fit_contents(self) -> None:
        """Resize to the height the contents need at the current width: the wrapped labels
        need more lines than a top-level window's minimum size counts, and a dialog short of
        them overlaps the plot with its caption."""
        lay = self.layout()
        if lay is None:
            return
        # the nested layouts (the levels panel's) first take in the texts just set
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)
        self.adjustSize()
        for _ in range(3):  # the wrapped labels' heights follow the width they get: settle
            QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)
            lay.activate()
            w = self.width()
            h = lay.totalHeightForWidth(w) if lay.hasHeightForWidth() else -1
            h = max(h, lay.totalMinimumSize().height())
            if h == self.height():
                break
            self.resize(w, h)

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

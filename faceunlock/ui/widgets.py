"""Small widgets shared by the wizard and the tray dialogs: the live preview, the distance
plot and the security-level chooser."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PyQt6.QtWidgets import (
    QButtonGroup,
    QLabel,
    QRadioButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from faceunlock.engine import calibration as cal

LEVEL_NAMES = {
    "convenient": "Convenient",
    "balanced": "Balanced",
    "secure": "Secure",
}


def to_qimage(rgb: np.ndarray) -> QImage:
    """RGB uint8 (H, W, 3) -> a QImage owning its pixels."""
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = a.shape[:2]
    return QImage(a.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def to_pixmap(rgb: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(to_qimage(rgb))


def one_in(p: float) -> str:
    """1e-4 -> '1 in 10,000'."""
    if not p or p <= 0 or math.isnan(p):
        return "unknown"
    return f"1 in {round(1.0 / p):,}"


def percent(p: float) -> str:
    return "unknown" if math.isnan(p) else f"{p:.0%}"


class PreviewLabel(QLabel):
    """Shows a frame scaled to fit, with face boxes drawn on it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(QSize(320, 180))
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setText("No picture yet")
        self.setStyleSheet("background: #202020; color: #d0d0d0;")
        self.frames_shown = 0

    def show_frame(
        self,
        rgb: np.ndarray,
        boxes: Sequence[tuple[float, float, float, float]] = (),
        good: bool = True,
    ) -> None:
        img = to_qimage(rgb)
        if boxes:
            p = QPainter(img)
            pen = QPen(QColor("#3ec43e" if good else "#e0a020"))
            pen.setWidth(max(2, img.width() // 200))
            p.setPen(pen)
            for left, top, right, bottom in boxes:
                p.drawRect(QRectF(left, top, right - left, bottom - top))
            p.end()
        pix = QPixmap.fromImage(img).scaled(
            self.size(),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.setPixmap(pix)
        self.frames_shown += 1


class DistancePlot(QWidget):
    """The user's genuine distances (dots) against the threshold (a vertical line).

    Smaller distance = more alike; dots left of the line would be accepted."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.genuine: np.ndarray = np.zeros(0)
        self.threshold: float | None = None
        self.setMinimumSize(QSize(320, 90))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_data(self, genuine: np.ndarray, threshold: float | None) -> None:
        self.genuine = np.asarray(genuine, np.float64).ravel()
        self.threshold = threshold
        self.update()

    def x_max(self) -> float:
        hi = max([0.8, *(self.genuine.tolist()), self.threshold or 0.0])
        return math.ceil(hi * 10 + 0.5) / 10

    def paintEvent(self, event: object) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.width(), self.height()
        left, right, top, axis_y = 10.0, w - 10.0, 18.0, h - 22.0
        xmax = self.x_max()

        def x(d: float) -> float:
            return left + (right - left) * min(max(d, 0.0), xmax) / xmax

        pal = self.palette()
        fg = pal.color(pal.ColorRole.WindowText)
        if self.threshold is not None:
            p.fillRect(
                QRectF(left, top, x(self.threshold) - left, axis_y - top), QColor(60, 180, 60, 40)
            )
        p.setPen(QPen(fg, 1))
        p.drawLine(QPointF(left, axis_y), QPointF(right, axis_y))
        t = 0.0
        while t <= xmax + 1e-9:
            p.drawLine(QPointF(x(t), axis_y), QPointF(x(t), axis_y + 4))
            p.drawText(
                QRectF(x(t) - 20, axis_y + 4, 40, 16), Qt.AlignmentFlag.AlignCenter, f"{t:.1f}"
            )
            t += 0.2
        p.setPen(QPen(QColor("#2a6fdb"), 1))
        p.setBrush(QColor("#2a6fdb"))
        n = self.genuine.size
        for i, d in enumerate(self.genuine):
            y = top + (axis_y - top) * (i + 1) / (n + 1)
            p.drawEllipse(QPointF(x(float(d)), y), 3.5, 3.5)
        if self.threshold is not None:
            p.setPen(QPen(QColor("#d03030"), 2))
            tx = x(self.threshold)
            p.drawLine(QPointF(tx, top - 4), QPointF(tx, axis_y))
            p.drawText(
                QRectF(tx - 60, 0, 120, 16),
                Qt.AlignmentFlag.AlignCenter,
                f"threshold {self.threshold:.3f}",
            )
        p.end()


class CalibrationPanel(QWidget):
    """Security-level radio buttons (expected FAR per attempt, measured FRR) and the plot.

    ``set_data`` takes the model's FAR table, the anchor count and the user's genuine
    distances; ``choice`` is the ThresholdChoice of the checked level."""

    levelChanged = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        intro = QLabel(
            "Choose how strict face unlock is. A stricter level lets fewer other people in, "
            "and may ask you to look again more often."
        )
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.group = QButtonGroup(self)
        self.radios: dict[str, QRadioButton] = {}
        for level in cal.SECURITY_LEVELS:
            rb = QRadioButton(LEVEL_NAMES[level])
            rb.setObjectName(f"level_{level}")
            self.group.addButton(rb)
            self.radios[level] = rb
            lay.addWidget(rb)
            rb.toggled.connect(self._toggled)
        self.threshold_label = QLabel()
        self.threshold_label.setObjectName("threshold_label")
        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #b06000;")
        self.plot = DistancePlot()
        lay.addWidget(self.threshold_label)
        lay.addWidget(self.plot)
        lay.addWidget(
            QLabel(
                "Dots: how far your anchors are from each other. Left of the red line = accepted."
            )
        )
        lay.addWidget(self.warning_label)
        self.choices: dict[str, cal.ThresholdChoice] = {}
        self.genuine = np.zeros(0)

    def set_data(
        self, table: cal.FarTable, n_anchors: int, genuine: np.ndarray, level: str
    ) -> None:
        self.genuine = np.asarray(genuine, np.float64)
        self.choices = {
            lv: cal.choose_threshold(table, n_anchors, self.genuine, lv)
            for lv in cal.SECURITY_LEVELS
        }
        for lv, ch in self.choices.items():
            self.radios[lv].setText(
                f"{LEVEL_NAMES[lv]}: another person gets in about {one_in(ch.per_attempt_far)} "
                f"attempts; you were not recognised in {percent(ch.expected_frr)} of your samples"
            )
        self.set_level(level if level in self.choices else "balanced")

    def set_level(self, level: str) -> None:
        self.radios[level].setChecked(True)
        self._refresh()

    @property
    def level(self) -> str:
        for lv, rb in self.radios.items():
            if rb.isChecked():
                return lv
        return "balanced"

    @property
    def choice(self) -> cal.ThresholdChoice | None:
        return self.choices.get(self.level)

    def _toggled(self, on: bool) -> None:
        if on:
            self._refresh()
            self.levelChanged.emit(self.level)

    def _refresh(self) -> None:
        ch = self.choice
        if ch is None:
            return
        self.threshold_label.setText(
            f"Threshold: {ch.threshold:.3f} (distance; smaller = stricter)"
        )
        self.plot.set_data(self.genuine, ch.threshold)
        self.warning_label.setText("\n".join(ch.warnings))

"""Small widgets shared by the wizard and the tray dialogs: the live preview, the distance
plot and the security-level chooser."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QPainter, QPen, QPixmap, QPolygonF
from PyQt6.QtWidgets import (
    QButtonGroup,
    QLabel,
    QRadioButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from faceunlock.app import service
from faceunlock.engine import calibration as cal
from faceunlock.engine.cohort import Matcher

LEVEL_NAMES = {
    "convenient": "Convenient",
    "balanced": "Balanced",
    "secure": "Secure",
}
#: what each security level means to a person (the wizard's Security level page and Settings)
LEVEL_DESCRIPTIONS = {
    "convenient": "Recognises you most easily, also in poor light or at an angle. Suits a "
    "computer at home that only you and people you trust can reach.",
    "balanced": "The usual choice: quick for you, and someone else gets in only very rarely.",
    "secure": "Hardest for anyone else, a relative who looks like you included; you may have to "
    "look at the camera again a little more often. Suits a laptop you carry or use at work.",
}


#: what each ``liveness.level`` (the photo check) means to a person (the wizard's Enable page
#: and Settings)
LIVENESS_NAMES = {"off": "Off", "passive": "Passive", "active": "Active"}
LIVENESS_DESCRIPTIONS = {
    "off": "No check. With a colour camera, anyone who holds up a photo or a phone picture "
    "of you can unlock.",
    "passive": "Before it unlocks, FaceUnlock looks for signs of a photo or a screen (the "
    "frame of a phone, glare on glass, a picture that moves as one flat sheet or never "
    "moves). It stops most photos and phone screens, and asks nothing of you; a print held "
    "perfectly still, a video or a mask can still get through.",
    "active": "Passive, then FaceUnlock asks you to turn your head to the left or the right, "
    "or to blink twice (chosen at random), and checks that the face it recognised does it, "
    "within a few "
    "seconds. This also stops a print held still and a video of you played back on a "
    "screen; each unlock takes about a second longer. The unlock prompt shows the request; "
    "the automatic lock-screen unlock does not try at this level.",
}


#: the same in one short line each (Settings, where the full words are the tooltip)
LIVENESS_SHORT = {
    "off": "No check: a photo or a phone picture of you can unlock.",
    "passive": "Refuses what looks like a photo or a screen; a print held still can pass.",
    "active": "Passive, then a head turn or two blinks when asked (stops videos).",
}


def liveness_description(level: str) -> str:
    """``"Passive: Before it unlocks, ..."``: a photo-check level's name and meaning."""
    return f"{LIVENESS_NAMES[level]}: {LIVENESS_DESCRIPTIONS[level]}"


def level_description(level: str) -> str:
    """``"Balanced: The usual choice: ..."``: a level's name and what it means."""
    return f"{LEVEL_NAMES[level]}: {LEVEL_DESCRIPTIONS[level]}"


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
    """The user's distances against other people's, with the threshold line.

    Other people (the model's impostor distribution, ``impostor``: a Histogram of LFW
    cross-identity distances) are a filled curve scaled to its peak; the user's own genuine
    distances are blue bars (0.02 wide, scaled to the tallest); the threshold is a red line.
    Smaller distance = more alike: a face scoring left of the line is accepted. Without an
    impostor histogram only the user's bars are drawn and ``note`` says why."""

    IMPOSTOR_COLOUR = QColor(224, 128, 48)
    GENUINE_COLOUR = QColor("#2a6fdb")
    THRESHOLD_COLOUR = QColor("#d03030")
    BIN = 0.02

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.genuine: np.ndarray = np.zeros(0)
        self.threshold: float | None = None
        self.impostor: cal.Histogram | None = None
        self.note = ""
        self.setMinimumSize(QSize(360, 190))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        # without a hint a layout short of room squeezes the plot below its minimum height,
        # and the caption under it is drawn over the axis labels
        return QSize(360, 190)

    def minimumSizeHint(self) -> QSize:
        return QSize(360, 190)

    def set_data(
        self,
        genuine: np.ndarray,
        threshold: float | None,
        impostor: cal.Histogram | None = None,
    ) -> None:
        """genuine: (G,) distances; threshold: the distance line; impostor: other people's
        distances (None: not drawn, and a note says so)."""
        self.genuine = np.asarray(genuine, np.float64).ravel()
        self.genuine = self.genuine[np.isfinite(self.genuine)]
        self.threshold = threshold
        self.impostor = impostor
        self.note = (
            ""
            if impostor is not None
            else "This model has no record of other people's distances: only yours are shown."
        )
        self.update()

    def x_range(self) -> tuple[float, float, float]:
        """(lowest, highest, tick step) of the score axis: every genuine score, the threshold
        and 99 % of other people's scores fit. Raw distances start at 0; cohort-normalised
        scores are mostly negative for the user and around 0 for strangers."""
        vals = [*self.genuine.tolist()]
        if self.threshold is not None:
            vals.append(self.threshold)
        if self.impostor is not None:
            vals += [self.impostor.quantile(0.005), self.impostor.quantile(0.995)]
        lo = min([0.0, *vals])
        hi = max([0.8 if lo >= 0 else 1.0, *vals])
        span = hi - lo
        step = next(st for st in (0.2, 0.5, 1.0, 2.0, 5.0, 10.0) if span / st <= 8)
        return math.floor(lo / step) * step, math.ceil(hi / step + 0.25) * step, step

    def x_max(self) -> float:
        return self.x_range()[1]

    def paintEvent(self, event: object) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        fg = pal.color(pal.ColorRole.WindowText)
        fm = p.fontMetrics()
        line_h = fm.height()
        w, h = self.width(), self.height()
        left, right = 10.0 + line_h, w - 12.0
        top = 2.0 * line_h + 8.0  # legend row, then the threshold label
        axis_y = h - 2.0 * line_h - 8.0  # tick labels and the axis title below
        xmin, xmax, tick = self.x_range()
        span = axis_y - top

        def x(d: float) -> float:
            return left + (right - left) * (min(max(d, xmin), xmax) - xmin) / (xmax - xmin)

        if self.threshold is not None:
            p.fillRect(
                QRectF(left, top, x(self.threshold) - left, span), QColor(60, 180, 60, 35)
            )
        # other people: a filled density curve
        if self.impostor is not None:
            dens = self.impostor.density()
            peak = float(dens.max()) if dens.size and dens.max() > 0 else 1.0
            pts = [QPointF(x(max(self.impostor.start, xmin)), axis_y)]
            for c, v in zip(self.impostor.centres(), dens, strict=True):
                if c < xmin:
                    continue
                if c > xmax:
                    break
                pts.append(QPointF(x(float(c)), axis_y - 0.92 * span * float(v) / peak))
            pts.append(QPointF(pts[-1].x(), axis_y))
            fill = QColor(self.IMPOSTOR_COLOUR)
            fill.setAlpha(110)
            p.setPen(QPen(self.IMPOSTOR_COLOUR, 1.5))
            p.setBrush(fill)
            p.drawPolygon(QPolygonF(pts))
        # the user: bars of a histogram, BIN wide per 0.2 of axis tick
        if self.genuine.size:
            width = self.BIN * tick / 0.2
            edges = np.arange(xmin, xmax + width, width)
            counts, _ = np.histogram(np.clip(self.genuine, xmin, xmax - 1e-9), edges)
            tallest = max(int(counts.max()), 1)
            bar = QColor(self.GENUINE_COLOUR)
            bar.setAlpha(200)
            p.setPen(QPen(self.GENUINE_COLOUR, 1))
            p.setBrush(bar)
            for i, n in enumerate(counts):
                if n:
                    bh = 0.75 * span * int(n) / tallest
                    x0, x1 = x(float(edges[i])), x(float(edges[i + 1]))
                    p.drawRect(QRectF(x0, axis_y - bh, max(x1 - x0 - 1.0, 2.0), bh))
        # axes, ticks and titles
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(fg, 1))
        p.drawLine(QPointF(left, axis_y), QPointF(right, axis_y))
        p.drawLine(QPointF(left, top), QPointF(left, axis_y))
        t = xmin
        while t <= xmax + 1e-9:
            p.drawLine(QPointF(x(t), axis_y), QPointF(x(t), axis_y + 4))
            p.drawText(
                QRectF(x(t) - 20, axis_y + 4, 40, line_h), Qt.AlignmentFlag.AlignCenter,
                f"{t:.1f}" if tick < 1 else f"{t:.0f}",
            )
            t += tick
        p.drawText(
            QRectF(left, axis_y + 4 + line_h, right - left, line_h),
            Qt.AlignmentFlag.AlignCenter,
            "difference between two faces (smaller = more alike)",
        )
        p.save()
        p.translate(2.0, axis_y)
        p.rotate(-90)
        p.drawText(QRectF(0, 0, span, line_h), Qt.AlignmentFlag.AlignCenter, "how often")
        p.restore()
        if self.note:
            p.drawText(
                QRectF(left + 6, top, right - left - 12, span / 2),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
                self.note,
            )
        self._legend(p, left, line_h)
        if self.threshold is not None:
            p.setPen(QPen(self.THRESHOLD_COLOUR, 2))
            tx = x(self.threshold)
            p.drawLine(QPointF(tx, top - 2), QPointF(tx, axis_y))
            text = f"threshold {self.threshold:.3f}"
            tw = fm.horizontalAdvance(text) + 8
            lx = min(max(tx - tw / 2, left), right - tw)
            p.drawText(QRectF(lx, line_h + 4, tw, line_h), Qt.AlignmentFlag.AlignCenter, text)
        p.end()

    def legend_entries(self) -> list[tuple[QColor, str]]:
        """(colour, words) of each legend entry, in drawing order."""
        out = []
        if self.impostor is not None:
            out.append((self.IMPOSTOR_COLOUR, "other people"))
        out.append((self.GENUINE_COLOUR, f"you ({self.genuine.size} measurements)"))
        out.append((self.THRESHOLD_COLOUR, "threshold: accepted left of it"))
        return out

    def _legend(self, p: QPainter, left: float, line_h: int) -> None:
        fm = p.fontMetrics()
        pal = self.palette()
        xpos = left
        for colour, text in self.legend_entries():
            p.setPen(QPen(colour, 1))
            p.setBrush(colour)
            p.drawRect(QRectF(xpos, 2 + line_h / 2 - 5, 10, 10))
            p.setPen(QPen(pal.color(pal.ColorRole.WindowText), 1))
            tw = fm.horizontalAdvance(text)
            p.drawText(QRectF(xpos + 14, 2, tw + 4, line_h), Qt.AlignmentFlag.AlignVCenter, text)
            xpos += 14 + tw + 18


class CalibrationPanel(QWidget):
    """Security-level radio buttons (expected FAR per attempt, measured FRR), the checked
    level in words (``description``, :func:`level_description`) and the plot.

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
        # the checked level in words, right under the levels (the wizard's and Recalibrate's)
        self.description = QLabel()
        self.description.setObjectName("level_description")
        self.description.setWordWrap(True)
        lay.addWidget(self.description)
        population = QLabel(
            "These rates were measured on photos of public figures. Between relatives or "
            "people who look alike, another person gets in about 10 times more often: choose "
            "Secure if that matters in your home or office."
        )
        population.setObjectName("population_note")
        population.setWordWrap(True)
        lay.addWidget(population)
        self.threshold_label = QLabel()
        self.threshold_label.setObjectName("threshold_label")
        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #b06000;")
        self.plot = DistancePlot()
        self.plot.setObjectName("distance_plot")
        lay.addWidget(self.threshold_label)
        lay.addWidget(self.plot)
        self.caption = QLabel(
            "Orange: how far apart the faces of two different people usually are. Blue: the "
            "distances measured on your own face. A face left of the red line is accepted "
            "as you."
        )
        self.caption.setWordWrap(True)
        lay.addWidget(self.caption)
        lay.addWidget(self.warning_label)
        self.choices: dict[str, cal.ThresholdChoice] = {}
        self.genuine = np.zeros(0)
        self.impostor: cal.Histogram | None = None

    def set_data(
        self,
        table: cal.FarTable,
        n_anchors: int,
        genuine: np.ndarray,
        level: str,
        matcher: Matcher | None = None,
    ) -> None:
        """``genuine`` and ``table`` are on ``matcher``'s scale (cohort-normalised scores,
        with the look-alike check); without a matcher, raw distances."""
        self.genuine = np.asarray(genuine, np.float64)
        self.impostor = table.impostor_histogram
        self.choices = {
            lv: service.choose(matcher, table, self.genuine, lv)
            if matcher is not None
            else cal.choose_threshold(table, n_anchors, self.genuine, lv)
            for lv in cal.SECURITY_LEVELS
        }
        for lv, ch in self.choices.items():
            self.radios[lv].setText(
                f"{LEVEL_NAMES[lv]}: another person gets in about {one_in(ch.per_attempt_far)} "
                f"attempts; {ch.frr_words()}"
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
            # Tab enters the levels at the checked one (Qt moves the tab stop only when a
            # level gets the focus, not when one is checked by the program)
            for rb in self.radios.values():
                rb.setFocusPolicy(
                    Qt.FocusPolicy.StrongFocus if rb.isChecked() else Qt.FocusPolicy.ClickFocus
                )
            self._refresh()
            self.levelChanged.emit(self.level)

    def _refresh(self) -> None:
        self.description.setText(level_description(self.level))
        ch = self.choice
        if ch is None:
            return
        self.threshold_label.setText(
            f"Threshold: {ch.threshold:.3f} (faces that differ less are accepted)"
        )
        self.plot.set_data(self.genuine, ch.threshold, self.impostor)
        self.warning_label.setText("\n".join(ch.warnings))

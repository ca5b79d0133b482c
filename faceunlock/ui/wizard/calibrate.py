"""The Security level page: the threshold from the FAR table and the new anchors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWizardPage

from faceunlock.engine import service
from faceunlock.ui.widgets import CalibrationPanel
from faceunlock.ui.wizard.common import details_button, error_style
from faceunlock.ui.workers import plain_message

if TYPE_CHECKING:
    from faceunlock.ui.wizard.wizard import EnrolWizard

class CalibratePage(QWizardPage):
    """Security level and threshold from the FAR table and the new anchors."""

    def __init__(self, wiz: EnrolWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("Security level")
        lay = QVBoxLayout(self)
        self.panel = CalibrationPanel()
        # the raw threshold is a detail (below), not a line for everybody
        self.panel.threshold_label.hide()
        lay.addWidget(self.panel)
        self.description = self.panel.description  # right under the levels
        self.details = QLabel()
        self.details.setObjectName("level_details")
        self.details.setWordWrap(True)
        self.details_button = details_button(self.details)
        self.details_button.setObjectName("details_button")
        lay.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(self.details)
        self.panel.levelChanged.connect(lambda _lv: self._describe())
        self.error = QLabel()
        error_style(self.error)
        lay.addWidget(self.error)

    def initializePage(self) -> None:
        self.error.setText("")
        try:
            self.wiz.build_template()
            t = self.wiz.template
            assert t is not None
            m, table, genuine = service.calibration_inputs(t, self.wiz.pipe_factory())
            self.panel.set_data(table, len(t), genuine, t.security_level, matcher=m)
            self._describe()
        except Exception as e:
            self.error.setText(plain_message(e))
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.panel.choice is not None and not self.error.text()

    def validatePage(self) -> bool:
        self.wiz.choice = self.panel.choice
        return self.wiz.choice is not None

    def _describe(self) -> None:
        """The checked level's threshold under Details (the panel describes the level)."""
        ch = self.panel.choice
        if ch is None:
            self.details.setText("")
            return
        scale = (
            "the distance between two faces (smaller = more alike)"
            if ch.scoring == "raw"
            else "a difference score, measured against other people's faces (smaller = more "
            "alike)"
        )
        self.details.setText(
            f"Threshold {ch.threshold:.3f}, on {scale}: a face below it counts as you. "
            "The rates above are estimates from the model's tests and from the pictures "
            "just taken."
        )

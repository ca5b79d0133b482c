"""The Security level page: the threshold from the FAR table and the new anchors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWizardPage

from faceunlock.engine import service
from faceunlock.ui.widgets import CalibrationPanel
from faceunlock.ui.wizard.common import error_style
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
        lay.addWidget(self.panel)
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
        except Exception as e:
            self.error.setText(plain_message(e))
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.panel.choice is not None and not self.error.text()

    def validatePage(self) -> bool:
        self.wiz.choice = self.panel.choice
        return self.wiz.choice is not None



"""The Finish page: the summary; Finish saves the draft."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtWidgets import QLabel, QVBoxLayout, QWizardPage

from faceunlock.ui.widgets import LEVEL_NAMES
from faceunlock.ui.wizard.common import error_style
from faceunlock.ui.workers import plain_message

if TYPE_CHECKING:
    from faceunlock.ui.wizard.wizard import EnrolWizard


class FinishPage(QWizardPage):
    def __init__(self, wiz: EnrolWizard) -> None:
        super().__init__()
        self.wiz = wiz
        self.setTitle("Ready")
        lay = QVBoxLayout(self)
        self.summary = QLabel()
        self.summary.setObjectName("finish_summary")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.error = QLabel()
        error_style(self.error)
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
        new = len(self.wiz.new_anchors)
        total = f", {len(t)} with the earlier ones" if len(t) > new else ""
        self.summary.setText(
            f"Your face: {new} pictures for {t.user}, as the appearance “{self.wiz.label}”"
            f"{total}. Security level: {LEVEL_NAMES.get(ch.level, ch.level)}. Unlocking the "
            f"locked session with your face: {'on' if watcher else 'off'}.{camera_text}\n\n"
            f"Press Finish to save your face data (encrypted) to {self.wiz.store.path(t.user)}. "
            "Then try it with “Test recognition…” in the tray menu."
        )

    def validatePage(self) -> bool:
        try:
            self.wiz.save()
        except Exception as e:
            self.error.setText("Could not save: " + plain_message(e))
            return False
        return True



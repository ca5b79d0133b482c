"""The Welcome page: what is stored and where, and the appearance's name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWizardPage

from faceunlock.engine.templates import check_label
from faceunlock.errors import FaceUnlockError
from faceunlock.ui.wizard.common import error_style

if TYPE_CHECKING:
    from faceunlock.ui.wizard.wizard import EnrolWizard


class WelcomePage(QWizardPage):
    def __init__(self, wiz: EnrolWizard) -> None:
        super().__init__()
        self.setTitle("Set up face unlock")
        lay = QVBoxLayout(self)
        path = wiz.store.path(wiz.user)
        text = QLabel(
            f"<p>FaceUnlock will learn your face (user <b>{wiz.user}</b>) so you can unlock "
            "this computer by looking at the camera. Your password always keeps working.</p>"
            f"<p><b>What is stored:</b> up to {wiz.anchors} measurements of your face (numbers "
            "worked out from the pictures, not the pictures themselves), small face thumbnails "
            "to show in this window, and the security level you choose.</p>"
            f"<p><b>Where:</b> {path}</p>"
            "<p><b>How it is protected:</b> the file is encrypted, and the key is kept in "
            "your login keyring. Only you can read it.</p>"
            "<p><b>Nothing leaves this computer.</b> No network is used.</p>"
            "<p>Nothing is saved until you press Finish at the end.</p>"
        )
        text.setObjectName("welcome_text")
        # the technical detail, for those who look for it
        text.setToolTip(
            "Each measurement is a face descriptor of 128 numbers; the thumbnails are 64×64 "
            "pixels. The file is encrypted with AES-256-GCM, under a key kept in your login "
            "keyring."
        )
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(text)
        self.wiz = wiz
        adding = wiz.store.exists(wiz.user) and not wiz.replace
        self.name = QLineEdit("" if adding and wiz.label == "default" else wiz.label)
        self.name.setObjectName("appearance_name")
        self.name.setPlaceholderText("e.g. glasses")
        self.name.setMaxLength(64)
        self.name.textChanged.connect(lambda _t: self.completeChanged.emit())
        name_label = QLabel("&Name of this appearance:")
        name_label.setBuddy(self.name)
        row = QHBoxLayout()
        row.addWidget(name_label)
        row.addWidget(self.name, 1)
        lay.addLayout(row)
        replacing = wiz.store.exists(wiz.user) and wiz.replace
        hint = QLabel(
            "You are already enrolled: these pictures are added to your face data as another "
            "appearance (for example with glasses, or in another room). Give it a name so "
            "you can remove it later. First you look at the camera so FaceUnlock can check "
            "that you are the enrolled owner: only you can add an appearance, and every new "
            "picture must match you."
            if adding
            else "Starting over: your current face data is replaced by this enrolment when "
            "you press Finish (until then nothing changes)."
            if replacing
            else "Enrol how you usually look; you can add other appearances (for example "
            "with glasses) later from the tray menu."
        )
        hint.setObjectName("appearance_hint")
        hint.setWordWrap(True)
        lay.addWidget(hint)
        self.error = QLabel()
        error_style(self.error)
        lay.addWidget(self.error)
        lay.addStretch(1)

    def isComplete(self) -> bool:
        return bool(self.name.text().strip())

    def validatePage(self) -> bool:
        label = self.name.text().strip()
        try:
            check_label(label)
        except FaceUnlockError:
            self.error.setText("Use 1 to 64 ordinary characters for the name (no tabs or line "
                               "breaks), for example “glasses”.")
            return False
        self.error.setText("")
        self.wiz.label = label
        return True


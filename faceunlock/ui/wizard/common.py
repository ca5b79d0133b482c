"""What the wizard's pages share: the page ids, the label styles, the Details toggle."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QLabel, QToolButton, QWidget

PAGE_WELCOME, PAGE_CAMERA, PAGE_CAPTURE, PAGE_CALIBRATE, PAGE_ENABLE, PAGE_FINISH = range(6)


def error_style(label: QLabel) -> None:
    label.setStyleSheet("color: #c02020;")
    label.setWordWrap(True)


def plain_style(label: QLabel) -> None:
    label.setStyleSheet("")


def details_button(target: QWidget, text: str = "Details") -> QToolButton:
    """A flat "▸ Details" button that shows and hides ``target`` (hidden at first)."""
    button = QToolButton()
    button.setText(text)
    button.setCheckable(True)
    button.setAutoRaise(True)
    button.setArrowType(Qt.ArrowType.RightArrow)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    target.setVisible(False)

    def toggled(on: bool) -> None:
        target.setVisible(on)
        button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    button.toggled.connect(toggled)
    return button

"""What the wizard's pages share: the page ids and the label styles."""

from __future__ import annotations

from PyQt6.QtWidgets import QLabel

PAGE_WELCOME, PAGE_CAMERA, PAGE_CAPTURE, PAGE_CALIBRATE, PAGE_ENABLE, PAGE_FINISH = range(6)


def error_style(label: QLabel) -> None:
    label.setStyleSheet("color: #c02020;")
    label.setWordWrap(True)


def plain_style(label: QLabel) -> None:
    label.setStyleSheet("")

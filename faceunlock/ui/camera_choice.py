"""The camera pickers' shared parts (wizard Camera page, Settings dialog).

Cameras come from :func:`~faceunlock.engine.sources.list_video_devices`, named as the driver
names them; infrared ones are labelled "(infrared)" and chosen by default when the config
still has the default source. :class:`CameraKindLabel` says in plain words what kind of
camera the chosen source is.
"""

from __future__ import annotations

import re

from PyQt6.QtWidgets import QLabel, QWidget

from faceunlock.config import CameraConfig
from faceunlock.engine.v4l2 import VideoDevice, list_video_devices

IR_TEXT = "Infrared camera: better in the dark, harder to fool with a photo"
COLOUR_TEXT = "Colour camera"
MISSING_TEXT = "No camera found"


def camera_index(spec: str | None) -> int | None:
    """N for a camera spec (``"N"`` or ``/dev/videoN``), else None (a file or folder)."""
    if spec is None:
        return None
    text = spec.strip()
    if text.isdigit():
        return int(text)
    m = re.fullmatch(r"/dev/video(\d+)", text)
    return int(m.group(1)) if m else None


def same_source(a: str | None, b: str | None) -> bool:
    """True when two source specs name the same source: the same camera (``"2"`` and
    ``/dev/video2``) or the same text."""
    if a is None or b is None:
        return a is b
    ia, ib = camera_index(a), camera_index(b)
    if ia is not None or ib is not None:
        return ia == ib
    return a.strip() == b.strip()


def source_items(devices: list[VideoDevice], *extra: str | None) -> list[tuple[str, str]]:
    """``(label, spec)`` of every device, then of each ``extra`` spec (the configured or
    requested source) that is none of them."""
    items = [(d.label, d.spec) for d in devices]
    known = {d.index for d in devices}
    for spec in extra:
        if spec is None or any(s == spec for _, s in items):
            continue
        idx = camera_index(spec)
        if idx is not None and idx in known:
            continue
        items.append((f"Camera {spec}" if spec.isdigit() else spec, spec))
    return items


def listed_spec(devices: list[VideoDevice], spec: str) -> str:
    """``spec`` as its picker item has it: a listed camera named ``/dev/videoN`` -> ``"N"``;
    anything else unchanged."""
    idx = camera_index(spec)
    dev = next((d for d in devices if d.index == idx), None)
    return spec if dev is None else dev.spec


def preferred_source(devices: list[VideoDevice], configured: str) -> str:
    """The source a picker starts on (as :func:`listed_spec` names it): the first infrared
    camera when the config still has the default source (``camera.source = "0"``) and that
    is not infrared itself, else the configured one."""
    ir = [d for d in devices if d.is_ir]
    current = camera_index(configured)
    if not ir or configured.strip() != CameraConfig.source or any(d.index == current for d in ir):
        return listed_spec(devices, configured)
    return ir[0].spec


def camera_missing(spec: str | None, devices: list[VideoDevice]) -> bool:
    """True when ``spec`` names a camera that is not among ``devices`` (not connected)."""
    idx = camera_index(spec)
    return idx is not None and not any(d.index == idx for d in devices)


def camera_kind_text(spec: str | None, devices: list[VideoDevice]) -> str:
    """:data:`IR_TEXT` or :data:`COLOUR_TEXT` for a camera spec, :data:`MISSING_TEXT` for a
    camera that is not connected; "" for a file or folder."""
    idx = camera_index(spec)
    if idx is None:
        return ""
    dev = next((d for d in devices if d.index == idx), None)
    if dev is None:
        return MISSING_TEXT
    return IR_TEXT if dev.is_ir else COLOUR_TEXT


class CameraKindLabel(QLabel):
    """Says whether the chosen source is an infrared or a colour camera (hidden for files).

    ``devices``: the cameras to know (default: listed now)."""

    def __init__(
        self, devices: list[VideoDevice] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("camera_kind")
        self.setWordWrap(True)
        self.devices = list_video_devices() if devices is None else devices

    def set_spec(self, spec: str | None) -> None:
        text = camera_kind_text(spec, self.devices)
        self.setText(text)
        if not text:
            self.hide()
        elif self.parentWidget() is not None:  # a parentless label would open a window
            self.show()

"""Workers with a fake source and pipeline (no models, no ../shared): the source is open
only while the worker runs, stop() ends it, failures arrive as words."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from faceunlock.config import Config
from faceunlock.engine.sources import FrameSource
from faceunlock.errors import CameraBusyError
from faceunlock.ui.workers import (
    AuthTestWorker,
    CameraWorker,
    FramePacket,
    WorkerThread,
    plain_message,
)


class FakeSource(FrameSource):
    def __init__(self, frames: int | None = None, fail: Exception | None = None) -> None:
        super().__init__()
        self.frames = frames
        self.fail = fail
        self.opened = 0
        self.served = 0

    @property
    def name(self) -> str:
        return "fake"

    def _open(self) -> None:
        if self.fail is not None:
            raise self.fail
        self.opened += 1

    def _close(self) -> None:
        pass

    def _read_raw(self) -> np.ndarray | None:
        if self.frames is not None and self.served >= self.frames:
            return None
        self.served += 1
        img = np.full((120, 160, 3), 128, np.uint8)
        img[::2] = 90  # not uniform, not grey-looking enough to matter
        img[:, :, 0] = 150
        return img


class FakeObs:
    def __init__(self, emb: np.ndarray) -> None:
        self.box = (40.0, 20.0, 100.0, 80.0)
        self.embedding = emb


class FakePipe:
    def __init__(self, emb: np.ndarray) -> None:
        self.emb = emb

    def observe(self, image: np.ndarray, select: Any = "all", **kw: Any) -> list[FakeObs]:
        return [FakeObs(self.emb)]


def test_source_open_only_while_running_and_stop(qtbot: QtBot) -> None:
    src = FakeSource()
    w = CameraWorker(lambda: src, lambda: FakePipe(np.zeros(128, np.float32)))
    packets: list[FramePacket] = []
    w.frame.connect(packets.append)
    t = WorkerThread(w)
    assert not src.is_open
    with qtbot.waitSignal(w.finished, timeout=10_000):
        t.start()
        qtbot.waitUntil(lambda: len(packets) >= 3, timeout=10_000)
        assert src.is_open
        assert t.stop()
    assert not src.is_open and src.opened == 1
    assert packets[0].boxes == [(40.0, 20.0, 100.0, 80.0)]
    assert packets[0].image.shape == (120, 160, 3)


def test_end_of_stream_finishes(qtbot: QtBot) -> None:
    src = FakeSource(frames=2)
    w = CameraWorker(lambda: src, lambda: FakePipe(np.zeros(128, np.float32)))
    packets: list[FramePacket] = []
    w.frame.connect(packets.append)
    t = WorkerThread(w)
    with qtbot.waitSignal(w.finished, timeout=10_000):
        t.start()
    assert len(packets) == 2 and not src.is_open
    t.stop()


def test_camera_error_becomes_words(qtbot: QtBot) -> None:
    src = FakeSource(fail=CameraBusyError("/dev/video0", "zoom (pid 42)"))
    w = CameraWorker(lambda: src, lambda: FakePipe(np.zeros(128, np.float32)))
    errors: list[str] = []
    w.error.connect(errors.append)
    t = WorkerThread(w)
    with qtbot.waitSignal(w.finished, timeout=10_000):
        t.start()
    t.stop()
    assert len(errors) == 1
    assert "busy" in errors[0] and "zoom" in errors[0] and "Traceback" not in errors[0]


@pytest.mark.parametrize("offset, match", [(0.1, True), (0.9, False)])
def test_auth_test_worker_decides(qtbot: QtBot, offset: float, match: bool) -> None:
    anchor = np.zeros((1, 128), np.float32)
    emb = np.zeros(128, np.float32)
    emb[0] = offset
    w = AuthTestWorker(lambda: FakeSource(frames=1), lambda: FakePipe(emb), anchor, 0.5)
    packets: list[FramePacket] = []
    w.frame.connect(packets.append)
    t = WorkerThread(w)
    with qtbot.waitSignal(w.finished, timeout=10_000):
        t.start()
    t.stop()
    assert packets[0].distance == pytest.approx(offset, abs=1e-5)
    assert packets[0].match is match and packets[0].threshold == 0.5


def test_plain_message_for_unexpected_errors() -> None:
    assert plain_message(RuntimeError("boom")) == "Unexpected error: boom"


def test_camera_page_indicator(qtbot: QtBot, store: Any, cfg: Config, tmp_path: Any) -> None:
    from faceunlock.ui.wizard import EnrolWizard

    w = EnrolWizard(store, cfg, user="alice", source_spec=str(tmp_path / "none.mp4"))
    qtbot.addWidget(w)
    page = w.camera_page
    img = np.zeros((120, 160, 3), np.uint8)
    page._frame(FramePacket(img, 0, dark=True))
    assert "Too dark" in page.indicator.text()
    page._frame(FramePacket(img, 0, boxes=[(0.0, 0.0, 20.0, 20.0)]))
    assert "Move closer" in page.indicator.text()
    page._frame(FramePacket(img, 0, boxes=[(0.0, 0.0, 90.0, 90.0)]))
    assert page.indicator.text().startswith("Good")
    page._frame(FramePacket(img, 0))
    assert "No face" in page.indicator.text()
    assert page.preview.frames_shown == 4

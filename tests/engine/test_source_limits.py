"""Frame sources refuse what is not a camera and frames over the pixel limit, with a message."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.engine.sources import ImageFolderSource, VideoFileSource, open_source
from faceunlock.errors import AuthStatus, CameraBusyError, NotACameraError, SourceError
from tests.fakes.bad_images import png


@pytest.mark.parametrize("node", ["/dev/null", "/dev/zero"])
def test_character_device_that_is_no_camera(node: str) -> None:
    """Before: "camera /dev/null is busy" listing every process holding /dev/null."""
    if not os.path.exists(node):
        pytest.skip(f"no {node}")
    with pytest.raises(NotACameraError) as ei:
        open_source(node)
    err = ei.value
    assert not isinstance(err, CameraBusyError)
    assert err.status == AuthStatus.CAMERA_ERROR
    assert str(err).startswith(f"{node} is not a camera")
    assert "V4L2 video capture device" in str(err) and "busy" not in str(err)


def test_folder_under_dev_is_no_camera() -> None:
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    with pytest.raises(NotACameraError, match="/dev/shm is not a camera: a folder"):
        open_source("/dev/shm")


def test_image_folder_refuses_a_decompression_bomb(tmp_path: Path) -> None:
    """Before: cv2.error out of the source (a traceback in every verb reading a camera)."""
    d = tmp_path / "frames"
    d.mkdir()
    cv2.imwrite(str(d / "0.png"), np.full((48, 64, 3), 90, np.uint8))
    (d / "1.png").write_bytes(png(50000, 50000))
    with ImageFolderSource(d) as src:
        assert src.read() is not None
        with pytest.raises(SourceError, match=r"1\.png: is 50000×50000 pixels") as ei:
            src.read()
    assert ei.value.status == AuthStatus.BAD_INPUT


def test_video_with_frames_over_the_limit(tmp_path: Path) -> None:
    """An MJPEG clip of 8000 × 6000 frames (48 MP): refused from the container's frame size,
    before a frame is decoded."""
    p = tmp_path / "big.avi"
    w = cv2.VideoWriter(str(p), cv2.VideoWriter.fourcc(*"MJPG"), 5, (8000, 6000))
    if not w.isOpened():
        pytest.skip("this OpenCV cannot write MJPEG AVI")
    w.write(np.zeros((6000, 8000, 3), np.uint8))
    w.release()
    with pytest.raises(SourceError, match="frames are 8000×6000 pixels") as ei:
        VideoFileSource(p).open()
    assert ei.value.status == AuthStatus.BAD_INPUT

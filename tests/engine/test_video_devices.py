"""V4L2 device discovery from a fake sysfs tree, and IR detection by name and by frames
(a real colour frame of the woman's clip against the same frame made grey)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.engine.sources import (
    VideoDevice,
    VideoFileSource,
    is_ir_name,
    list_video_devices,
    looks_infrared,
    probe_infrared,
    v4l2_can_capture,
)
from faceunlock.errors import InputError

FEMALE = "head-pose-face-detection-female.gif"


def _node(root: Path, node: str, name: str | None, index: int | None = 0) -> None:
    d = root / node
    d.mkdir(parents=True)
    if name is not None:
        (d / "name").write_text(name + "\n")
    if index is not None:
        (d / "index").write_text(f"{index}\n")


@pytest.fixture()
def sysfs(tmp_path: Path) -> Path:
    """A ThinkPad-like laptop (colour + IR node, each with a UVC metadata node) and a USB
    webcam, as /sys/class/video4linux lists them."""
    root = tmp_path / "video4linux"
    _node(root, "video0", "Integrated Camera: Integrated C")
    _node(root, "video1", "Integrated Camera: Integrated C", index=1)
    _node(root, "video2", "Integrated Camera: Integrated I")
    _node(root, "video3", "Integrated Camera: Integrated I", index=1)
    _node(root, "video10", "HD Pro Webcam C920")
    _node(root, "video11", "Integrated IR Camera", index=None)  # older kernels: no index
    _node(root, "v4l-subdev0", "ov5670")
    (root / "not-a-device").write_text("")
    return root


def test_lists_capture_nodes_with_names_and_flags_ir(sysfs: Path) -> None:
    devs = list_video_devices(sysfs)
    assert devs == [
        VideoDevice(0, "Integrated Camera: Integrated C", False),
        VideoDevice(2, "Integrated Camera: Integrated I", True),
        VideoDevice(10, "HD Pro Webcam C920", False),
        VideoDevice(11, "Integrated IR Camera", True),
    ]
    assert devs[1].path == "/dev/video2" and devs[1].spec == "2"
    assert devs[1].label == "Integrated Camera: Integrated I (/dev/video2) (infrared)"
    assert devs[0].label == "Integrated Camera: Integrated C (/dev/video0)"


def test_default_root_comes_from_the_environment(
    sysfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEUNLOCK_VIDEO4LINUX", str(sysfs))
    assert [d.index for d in list_video_devices()] == [0, 2, 10, 11]


def test_missing_tree_or_name_file(tmp_path: Path) -> None:
    assert list_video_devices(tmp_path / "absent") == []
    _node(tmp_path / "v", "video5", None)
    assert list_video_devices(tmp_path / "v") == [VideoDevice(5, "", False)]
    assert VideoDevice(5, "", False).label == "Camera 5 (/dev/video5)"


def test_nodes_that_cannot_be_asked_are_kept(sysfs: Path, tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "video0").write_text("")  # a plain file: VIDIOC_QUERYCAP fails -> unknown
    assert v4l2_can_capture(dev / "video0") is None
    assert v4l2_can_capture(dev / "video2") is None
    assert len(list_video_devices(sysfs, dev_root=dev)) == 4


@pytest.mark.parametrize(
    ("name", "ir"),
    [
        ("Integrated IR Camera", True),
        ("IR Camera", True),
        ("HD WebCam: IR", True),
        ("Intel(R) RealSense(TM) 3D Camera (Front F200) Infrared", True),
        ("USB2.0 Infra-red Camera", True),
        ("Windows Hello Face Camera", True),
        ("Integrated Camera: Integrated I", True),
        ("Integrated Camera: Integrated C", False),
        ("HD Pro Webcam C920", False),
        ("Sirius USB2.0 Camera", False),
        ("FaceTime HD Camera (Built-in)", False),
        ("", False),
    ],
)
def test_ir_names(name: str, ir: bool) -> None:
    assert is_ir_name(name) is ir


@pytest.fixture(scope="module")
def colour_frame(faces_dir: Path) -> np.ndarray:
    """A colour webcam frame (the two-person clip's first, tests/data/faces), BGR uint8
    (H, W, 3), as OpenCV decodes it."""
    img = cv2.imread(str(faces_dir / "pair-00.jpg"))
    assert img is not None
    return np.asarray(img)


def test_frames_tell_ir_from_colour(colour_frame: np.ndarray) -> None:
    grey = cv2.cvtColor(colour_frame, cv2.COLOR_BGR2GRAY)
    grey3 = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    assert not looks_infrared([colour_frame])
    assert looks_infrared([grey])  # (H, W): a greyscale stream
    assert looks_infrared([grey3, grey[:, :, None]])  # three equal channels, one channel
    assert looks_infrared([(grey.astype(np.uint16) << 8)])  # 16-bit IR
    assert not looks_infrared([grey3, colour_frame])  # every frame must be grey
    assert not looks_infrared([])
    with pytest.raises(InputError):
        looks_infrared([np.zeros((4, 4, 2), np.uint8)])


def test_probe_reads_the_source(colour_frame: np.ndarray, clips_dir: Path, tmp_path: Path) -> None:
    assert probe_infrared(str(clips_dir / FEMALE)) is False
    folder = tmp_path / "ir"
    folder.mkdir()
    with VideoFileSource(clips_dir / FEMALE) as src:
        for f in src:
            if f.index >= 3:
                break
            grey = cv2.cvtColor(f.image, cv2.COLOR_RGB2GRAY)
            cv2.imwrite(str(folder / f"{f.index}.png"), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    assert sorted(os.listdir(folder)) == ["0.png", "1.png", "2.png"]
    assert probe_infrared(str(folder), frames=10) is True
    with pytest.raises(InputError):
        probe_infrared(str(folder), frames=0)

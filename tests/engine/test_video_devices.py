"""V4L2 device discovery from a fake sysfs tree, and IR detection by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceunlock.engine.v4l2 import (
    VideoDevice,
    is_ir_name,
    list_video_devices,
    v4l2_can_capture,
)


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

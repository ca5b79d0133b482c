from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.engine.quality import is_dark
from faceunlock.engine.sources import (
    CameraSource,
    Frame,
    ImageFolderSource,
    VideoFileSource,
    make_source,
    normalize_frame,
    open_source,
)
from faceunlock.engine.v4l2 import camera_error_from_oserror, device_path, processes_using
from faceunlock.errors import (
    AuthStatus,
    CameraBusyError,
    CameraError,
    CameraNotFoundError,
    CameraPermissionError,
    InputError,
    NoUsableFramesError,
    SourceError,
)

CLIPS = {
    "head-pose-face-detection-female.gif": 23,
    "head-pose-face-detection-male.gif": 62,
    "head-pose-face-detection-female-and-male.gif": 56,
}
FEMALE = "head-pose-face-detection-female.gif"


def _write_pngs(folder: Path, images: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        assert cv2.imwrite(str(folder / name), img)
    return folder


def _black_video(path: Path, frames: int = 12) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (64, 48))
    if not w.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG .avi")
    for _ in range(frames):
        w.write(np.zeros((48, 64, 3), np.uint8))
    w.release()
    return path


# ------------------------------------------------------------------------- video files


@pytest.mark.parametrize("name,count", sorted(CLIPS.items()))
def test_gif_clips_frame_count_and_format(clips_dir: Path, name: str, count: int) -> None:
    with VideoFileSource(clips_dir / name) as src:
        assert src.is_open
        frames = list(src)
        assert src.fps == pytest.approx(12.5)
    assert not src.is_open
    assert len(frames) == count
    assert [f.index for f in frames] == list(range(count))
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps)
    for f in frames:
        assert isinstance(f, Frame)
        assert f.image.dtype == np.uint8
        assert f.image.shape == (270, 480, 3)
        assert f.image.flags.c_contiguous
        assert not f.is_ir  # colour clips


def test_gif_is_rgb_not_bgr(clips_dir: Path) -> None:
    cap = cv2.VideoCapture(str(clips_dir / FEMALE))
    ok, bgr = cap.read()
    cap.release()
    assert ok
    with VideoFileSource(clips_dir / FEMALE) as src:
        frame = src.read()
    assert frame is not None
    np.testing.assert_array_equal(frame.image, bgr[:, :, ::-1])


@pytest.mark.parametrize("rotation,k", [(90, -1), (180, 2), (270, 1)])
def test_rotation(clips_dir: Path, rotation: int, k: int) -> None:
    with VideoFileSource(clips_dir / FEMALE) as src:
        ref = src.read()
    with VideoFileSource(clips_dir / FEMALE, rotation=rotation) as src:
        rot = src.read()
    assert ref is not None and rot is not None
    np.testing.assert_array_equal(rot.image, np.rot90(ref.image, k=k))  # clockwise rotation
    expected = (480, 270, 3) if rotation in (90, 270) else (270, 480, 3)
    assert rot.image.shape == expected


def test_bad_rotation_is_rejected(clips_dir: Path) -> None:
    with pytest.raises(InputError, match="rotation: must be one of 0, 90, 180, 270, got 45"):
        VideoFileSource(clips_dir / FEMALE, rotation=45)


def test_loop_restarts_and_keeps_counting(clips_dir: Path) -> None:
    n = CLIPS[FEMALE]
    with VideoFileSource(clips_dir / FEMALE, loop=True) as src:
        frames = [src.read() for _ in range(n + 3)]
    assert all(f is not None for f in frames)
    assert frames[-1] is not None and frames[-1].index == n + 2
    first, again = frames[0], frames[n]
    assert first is not None and again is not None
    np.testing.assert_array_equal(first.image, again.image)


def test_realtime_paces_at_file_fps(clips_dir: Path) -> None:
    with VideoFileSource(clips_dir / FEMALE, realtime=True) as src:
        t0 = time.monotonic()
        frames = [src.read() for _ in range(5)]
        elapsed = time.monotonic() - t0
    assert all(f is not None for f in frames)
    assert elapsed >= 4 / 12.5 - 0.02  # 4 frame periods at 12.5 fps
    assert elapsed < 2.0


def test_realtime_drop_late_skips_stale_frames(clips_dir: Path) -> None:
    with VideoFileSource(clips_dir / FEMALE) as src:
        ref = [f.image for f in src]
    with VideoFileSource(clips_dir / FEMALE, realtime=True, drop_late=True) as src:
        time.sleep(0.45)  # ~5.6 frame periods
        frame = src.read()
    assert frame is not None and frame.index == 0
    matches = [i for i, img in enumerate(ref) if np.array_equal(img, frame.image)]
    assert matches and max(matches) >= 4


def test_read_on_closed_source_raises(clips_dir: Path) -> None:
    src = VideoFileSource(clips_dir / FEMALE)
    with pytest.raises(CameraError, match="not open"):
        src.read()
    src.open()
    src.close()
    src.close()  # idempotent
    assert not src.is_open


def test_video_file_errors_name_the_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a video\n")
    with pytest.raises(SourceError, match=r"notes\.txt: cannot be opened as a video") as ei:
        VideoFileSource(text).open()
    assert ei.value.status is AuthStatus.BAD_INPUT
    assert isinstance(ei.value, CameraError)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(SourceError, match=r"junk\.mp4"):
        VideoFileSource(junk).open()
    with pytest.raises(SourceError, match=r"missing\.mp4: file not found"):
        VideoFileSource(tmp_path / "missing.mp4").open()
    with pytest.raises(SourceError, match="not a regular file"):
        VideoFileSource(tmp_path).open()


# ------------------------------------------------------------------------- image folders


def test_image_folder_natural_order_and_rgb(tmp_path: Path) -> None:
    images = {f"frame{i}.png": np.full((20, 30, 3), (0, 10 * i, 200), np.uint8) for i in range(12)}
    folder = _write_pngs(tmp_path / "seq", images)
    (folder / "readme.txt").write_text("ignored")
    (folder / ".hidden.png").write_bytes(b"ignored")
    with ImageFolderSource(folder) as src:
        frames = list(src)
    assert len(frames) == 12
    # natural order: frame2 before frame10; BGR (0, g, 200) on disk -> RGB (200, g, 0)
    greens = [int(f.image[0, 0, 1]) for f in frames]
    assert greens == [10 * i for i in range(12)]
    assert all(tuple(f.image[0, 0]) == (200, 10 * i, 0) for i, f in enumerate(frames))
    assert all(f.image.shape == (20, 30, 3) and not f.is_ir for f in frames)


def test_image_folder_rotation_and_loop(tmp_path: Path) -> None:
    img = np.zeros((20, 30, 3), np.uint8)
    img[:5, :5] = (255, 255, 255)
    folder = _write_pngs(tmp_path / "seq", {"a.png": img, "b.png": img})
    with ImageFolderSource(folder, rotation=90, loop=True) as src:
        frames = [src.read() for _ in range(5)]
    assert all(f is not None and f.image.shape == (30, 20, 3) for f in frames)
    assert frames[4] is not None and frames[4].index == 4


def test_image_folder_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="contains no image files"):
        ImageFolderSource(empty).open()
    with pytest.raises(SourceError, match="folder not found"):
        ImageFolderSource(tmp_path / "nope").open()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG not really")
    with ImageFolderSource(bad) as src, pytest.raises(SourceError, match=r"broken\.png"):
        src.read()


# ------------------------------------------------------------------------- dispatch


def test_open_source_dispatch(tmp_path: Path, clips_dir: Path) -> None:
    folder = _write_pngs(tmp_path / "seq", {"a.png": np.zeros((8, 8, 3), np.uint8)})
    assert isinstance(make_source("0"), CameraSource)
    assert make_source(" 2 ").name == "/dev/video2"
    assert isinstance(make_source(1), CameraSource)
    cam = make_source("/dev/video3", width=320, height=240, fps=15, rotation=180)
    assert isinstance(cam, CameraSource)
    assert (cam.path, cam.width, cam.height, cam.requested_fps, cam.rotation) == (
        "/dev/video3",
        320,
        240,
        15,
        180,
    )
    # camera settings that do not apply to a folder or a file are ignored
    src = open_source(str(folder), width=640, height=480, fps=30, rotation=90)
    assert isinstance(src, ImageFolderSource) and src.is_open and src.rotation == 90
    src.close()
    vid = make_source(str(clips_dir / FEMALE), width=640, loop=True, realtime=False)
    assert isinstance(vid, VideoFileSource) and vid.loop


def test_open_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no camera, video file or image folder") as ei:
        open_source(str(tmp_path / "nothing-here.mp4"))
    assert "nothing-here.mp4" in str(ei.value)
    with pytest.raises(SourceError, match="empty source"):
        open_source("  ")
    with pytest.raises(TypeError, match="widht"):
        make_source("0", widht=640)  # type: ignore[call-arg]
    with pytest.raises(InputError, match="expected a string"):
        make_source(True)



def test_a_misspelt_source_keyword_is_a_type_error(tmp_path: Path, clips_dir: Path) -> None:
    folder = _write_pngs(tmp_path / "seq", {"a.png": np.zeros((8, 8, 3), np.uint8)})
    for spec in ("0", str(folder), str(clips_dir / FEMALE)):
        with pytest.raises(TypeError, match="realtme"):
            make_source(spec, realtme=True)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="lop"):
            open_source(spec, lop=True)
    # a keyword another kind takes is ignored by a kind without it
    vid = make_source(str(clips_dir / FEMALE), fps=12, fourcc="MJPG", width=320)
    assert isinstance(vid, VideoFileSource)
    cam = make_source("0", loop=True, drop_late=True, max_bad_frames=5)
    assert isinstance(cam, CameraSource) and cam.max_bad_frames == 5
    assert (cam.width, cam.height, cam.requested_fps) == (640, 480, 30)  # the camera defaults


def test_v4l2_names_are_still_importable_from_sources() -> None:
    from faceunlock.engine import sources, v4l2

    for name in ("VideoDevice", "list_video_devices", "probe_camera", "processes_using"):
        assert getattr(sources, name) is getattr(v4l2, name)


# ------------------------------------------------------------------------- cameras


def test_device_path() -> None:
    assert device_path(0) == "/dev/video0"
    assert device_path("4") == "/dev/video4"
    assert device_path("/dev/video1") == "/dev/video1"
    with pytest.raises(InputError):
        device_path(-1)


def test_missing_camera(tmp_path: Path) -> None:
    expected = (
        "no camera at /dev/video99: the device does not exist — is the webcam plugged in? "
        "List devices with `v4l2-ctl --list-devices`"
    )
    for spec in ("/dev/video99", "99"):
        with pytest.raises(CameraNotFoundError) as ei:
            open_source(spec)
        assert str(ei.value) == expected
        assert ei.value.status is AuthStatus.CAMERA_ERROR


def test_oserror_mapping() -> None:
    busy = camera_error_from_oserror("/dev/video0", OSError(errno.EBUSY, "Device busy"))
    assert isinstance(busy, CameraBusyError)
    assert "another program is using the camera" in str(busy)
    perm = camera_error_from_oserror("/dev/video0", OSError(errno.EACCES, "Permission denied"))
    assert isinstance(perm, CameraPermissionError)
    assert "`video` group" in str(perm) and "usermod -aG video" in str(perm)
    gone = camera_error_from_oserror("/dev/video0", OSError(errno.ENODEV, "No such device"))
    assert isinstance(gone, CameraNotFoundError)
    other = camera_error_from_oserror("/dev/video0", OSError(errno.EIO, "I/O error"))
    assert type(other) is CameraError and "I/O error" in str(other)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A fake camera node held open by another process (as a busy camera is)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc")
    node = tmp_path / "video7"
    node.write_bytes(b"")
    with open(node, "rb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=fh)
    try:
        yield node, proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_processes_using_finds_the_holder(holder: tuple[Path, int]) -> None:
    node, pid = holder
    assert pid in [p for p, _ in processes_using(node)]
    assert os.getpid() not in [p for p, _ in processes_using(node)]


def test_busy_camera_names_the_holder(holder: tuple[Path, int]) -> None:
    node, pid = holder
    with pytest.raises(CameraBusyError, match="another program is using the camera") as ei:
        CameraSource(str(node)).open()
    assert f"pid {pid}" in str(ei.value)


# ------------------------------------------------------------------------- IR / grey


def test_greyscale_frames_are_ir_and_expanded(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = (100 + rng.integers(0, 20, (60, 80))).astype(np.uint8)  # low contrast IR-like
    folder = _write_pngs(tmp_path / "ir", {"ir.png": grey})
    with ImageFolderSource(folder) as src:
        frame = src.read()
    assert frame is not None and frame.is_ir
    assert frame.image.shape == (60, 80, 3) and frame.image.dtype == np.uint8
    np.testing.assert_array_equal(frame.image[..., 0], frame.image[..., 1])
    np.testing.assert_array_equal(frame.image[..., 1], frame.image[..., 2])
    assert frame.image[..., 0].std() > grey.std()  # CLAHE stretched the contrast


def test_normalize_frame_variants() -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 255, (16, 16), dtype=np.uint8)
    img, ir = normalize_frame(grey)
    assert ir and img.shape == (16, 16, 3)
    img, ir = normalize_frame(grey[:, :, None])
    assert ir and img.shape == (16, 16, 3)
    img, ir = normalize_frame(grey.astype(np.uint16) * 257)  # 16-bit IR
    assert ir and img.dtype == np.uint8
    near = np.repeat(grey[:, :, None], 3, axis=2).astype(np.int16)
    near[..., 0] += 1  # within tolerance
    near_u8 = np.clip(near, 0, 255).astype(np.uint8)
    assert normalize_frame(near_u8)[1]
    assert not normalize_frame(near_u8, detect_ir=False)[1]
    colour = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    img, ir = normalize_frame(colour)
    assert not ir
    np.testing.assert_array_equal(img, colour[:, :, ::-1])
    bgra = np.dstack([colour, np.full((16, 16), 255, np.uint8)])
    np.testing.assert_array_equal(normalize_frame(bgra)[0], colour[:, :, ::-1])
    with pytest.raises(InputError, match="dtype"):
        normalize_frame(colour.astype(np.float32))


# ------------------------------------------------------------------------- garbage frames


def test_black_video_is_dark_and_fails_with_bad_frame_limit(tmp_path: Path) -> None:
    video = _black_video(tmp_path / "black.avi")
    with VideoFileSource(video) as src:
        frames = list(src)
    assert len(frames) == 12
    assert all(is_dark(f.image) for f in frames)
    with (
        VideoFileSource(video, max_bad_frames=5) as src,
        pytest.raises(NoUsableFramesError, match="no usable frames"),
    ):
        list(src)


def test_black_folder_fails_with_bad_frame_limit(tmp_path: Path) -> None:
    black = np.zeros((24, 32, 3), np.uint8)
    folder = _write_pngs(tmp_path / "black", {f"{i:02d}.png": black for i in range(6)})
    with ImageFolderSource(folder, max_bad_frames=4) as src:
        got = [src.read() for _ in range(3)]  # three blank frames are still delivered
        assert all(f is not None for f in got)
        with pytest.raises(NoUsableFramesError) as ei:
            src.read()
    assert isinstance(ei.value, CameraError) and ei.value.count == 4


def test_a_good_frame_resets_the_bad_count(tmp_path: Path) -> None:
    black = np.zeros((24, 32, 3), np.uint8)
    noise = np.random.default_rng(2).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    seq = [black, black, noise, black, black, noise]
    folder = _write_pngs(tmp_path / "mixed", {f"{i:02d}.png": im for i, im in enumerate(seq)})
    with ImageFolderSource(folder, max_bad_frames=3) as src:
        assert len(list(src)) == 6


def test_file_timestamps_follow_the_clip_timeline(clips_dir: Path, tmp_path: Path) -> None:
    """Unpaced, a clip still stamps its frames 1/fps apart (its own timeline), so timing
    decisions on timestamps (enrolment pacing) do not depend on how fast it decodes."""
    with VideoFileSource(clips_dir / FEMALE, loop=True) as src:
        stamps = [f.timestamp for f in (src.read() for _ in range(30)) if f is not None]
    np.testing.assert_allclose(np.diff(stamps), 1 / 12.5, rtol=1e-9)
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(4):
        cv2.imwrite(str(d / f"{i}.png"), np.full((40, 40, 3), 60 * i, np.uint8))
    with make_source(str(d), fps=20, loop=True) as folder:
        stamps = [f.timestamp for f in (folder.read() for _ in range(9)) if f is not None]
    np.testing.assert_allclose(np.diff(stamps), 0.05, rtol=1e-9)
    with pytest.raises(InputError, match="fps"):
        make_source(str(d), fps=0)


def test_realtime_folder_never_delivers_a_frame_early(tmp_path: Path) -> None:
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(3):
        cv2.imwrite(str(d / f"{i}.png"), np.full((40, 40, 3), 60 * i, np.uint8))
    with make_source(str(d), fps=25, realtime=True, loop=True) as src:
        for _ in range(6):
            f = src.read()
            assert f is not None and time.monotonic() >= f.timestamp


def test_ir_sensor_only_for_single_channel_frames_or_an_infrared_camera(tmp_path: Path) -> None:
    """A near-grey colour frame is ``is_ir`` (CLAHE for detection) but not ``ir_sensor``: a
    black-and-white print filling a colour camera's view must not switch liveness to its
    infrared cues. A single-channel frame is both."""
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (48, 64), dtype=np.uint8)
    mono, three = tmp_path / "mono", tmp_path / "three"
    mono.mkdir()
    three.mkdir()
    cv2.imwrite(str(mono / "0.png"), grey)
    cv2.imwrite(str(three / "0.png"), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    with ImageFolderSource(mono) as src:
        f = src.read()
        assert f is not None and f.is_ir and f.ir_sensor
    with ImageFolderSource(three) as src:
        f = src.read()
        assert f is not None and f.is_ir and not f.ir_sensor


def test_device_is_ir_reads_the_sysfs_name(tmp_path: Path) -> None:
    from faceunlock.engine.v4l2 import device_is_ir

    for n, name in ((0, "Integrated Camera: Integrated C"), (2, "Integrated IR Camera")):
        (tmp_path / f"video{n}").mkdir()
        (tmp_path / f"video{n}" / "name").write_text(name + "\n")
    assert device_is_ir("/dev/video2", tmp_path) is True
    assert device_is_ir("/dev/video0", tmp_path) is False
    assert device_is_ir("/dev/video7", tmp_path) is False  # no sysfs entry
    assert device_is_ir(str(tmp_path / "clip.mp4"), tmp_path) is False

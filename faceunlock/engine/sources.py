"""Frame sources behind one interface: a live camera, a replayed video/GIF, or an image folder.

Every source yields :class:`Frame` objects whose ``image`` is RGB ``uint8`` (H, W, 3), whatever
the device or file delivers (BGR, BGRA, greyscale, 16-bit IR). Greyscale and near-grey frames
(typical of IR cameras) are flagged ``is_ir``, contrast-equalised with CLAHE and expanded to
three channels.

Usage::

    with open_source("0", width=640, height=480) as src:
        for frame in src:
            ...

:func:`list_video_devices` lists the V4L2 capture devices with their names (from sysfs) and
flags the infrared ones; :func:`looks_infrared` / :func:`probe_infrared` tell an IR stream by
its frames.

Errors are :class:`~faceunlock.errors.CameraError` subclasses: ``CameraNotFoundError``,
``CameraBusyError``, ``CameraPermissionError``, ``NoUsableFramesError`` and, for files and
folders, ``SourceError``.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import fcntl
import grp
import inspect
import math
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import cv2
import numpy as np

from faceunlock import MAX_IMAGE_PIXELS
from faceunlock.engine.imageio import decode_image, read_image_bytes
from faceunlock.engine.quality import is_uniform
from faceunlock.errors import (
    CameraBusyError,
    CameraError,
    CameraNotFoundError,
    CameraPermissionError,
    ImageReadError,
    InputError,
    NotACameraError,
    NoUsableFramesError,
    SourceError,
)
from faceunlock.paths import video4linux_dir

ROTATIONS = (0, 90, 180, 270)
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm"}
)
_ROTATE_CODES = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}
_FALLBACK_FPS = 25.0


@dataclass(frozen=True)
class Frame:
    """One frame from a source.

    image: RGB uint8 (H, W, 3), rotated as the source was configured.
    index: 0-based position since the source was opened (keeps counting across loops).
    timestamp: ``time.monotonic()`` seconds: when a camera delivered the frame; for a video
    file or image folder, the frame's place on the clip's own timeline (the opening time plus
    its position / frame rate), so that timing decisions (enrolment pacing) follow the clip
    whether or not it is replayed in real time. A ``realtime`` file source never delivers a
    frame before its timestamp.
    is_ir: the raw frame was greyscale or near-grey (IR camera); CLAHE was applied.
    """

    image: np.ndarray
    index: int
    timestamp: float
    is_ir: bool = False


# --------------------------------------------------------------------------------------------
# Raw frame normalisation
# --------------------------------------------------------------------------------------------


def _to_u8(raw: np.ndarray) -> np.ndarray:
    if raw.dtype == np.uint8:
        return raw
    if raw.dtype == np.uint16:
        return (raw >> 8).astype(np.uint8)
    raise InputError(f"frame: unsupported dtype {raw.dtype} (expected uint8 or uint16)")


def _raw_is_blank(raw: np.ndarray) -> bool:
    img = _to_u8(raw)
    if img.ndim == 3 and img.shape[2] in (1, 4):
        img = img[:, :, 0] if img.shape[2] == 1 else img[:, :, :3]
    return is_uniform(np.ascontiguousarray(img))


def is_near_grey(bgr: np.ndarray, *, tolerance: int = 4, share: float = 0.99) -> bool:
    """True when the three channels agree within ``tolerance`` on ≥ ``share`` of the pixels.

    bgr: uint8 (H, W, 3) in any channel order. Sampled on a 4-pixel grid for speed.
    """
    s = bgr[::4, ::4].astype(np.int16)
    diff = np.maximum(np.abs(s[:, :, 0] - s[:, :, 1]), np.abs(s[:, :, 1] - s[:, :, 2]))
    return bool(np.count_nonzero(diff <= tolerance) >= share * diff.size)


def normalize_frame(
    raw: np.ndarray,
    *,
    bgr: bool = True,
    detect_ir: bool = True,
    clahe: cv2.CLAHE | None = None,
    grey_tolerance: int = 4,
) -> tuple[np.ndarray, bool]:
    """Convert a raw frame to the engine's RGB uint8 (H, W, 3); return ``(image, is_ir)``.

    raw: uint8/uint16 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); colour frames are BGR(A) when
    ``bgr`` is true (OpenCV's order), RGB(A) otherwise. A greyscale frame, or with ``detect_ir``
    a near-grey colour frame, is treated as IR: contrast-equalised with CLAHE and expanded to
    three equal channels.
    """
    if not isinstance(raw, np.ndarray) or raw.ndim not in (2, 3):
        shape = getattr(raw, "shape", None)
        raise InputError(f"frame: expected an (H, W[, C]) array, got {shape}")
    img = _to_u8(raw)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR if bgr else cv2.COLOR_RGBA2RGB)
    if img.ndim == 3 and img.shape[2] != 3:
        raise InputError(f"frame: expected 1, 3 or 4 channels, got {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise InputError(f"frame: empty image {img.shape}")
    gray: np.ndarray | None = None
    if img.ndim == 2:
        gray = img
    elif detect_ir and is_near_grey(img, tolerance=grey_tolerance):
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    if gray is not None:
        eq = (clahe or _default_clahe()).apply(np.ascontiguousarray(gray))
        return cv2.cvtColor(eq, cv2.COLOR_GRAY2RGB), True
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(img)
    return rgb, False


def _default_clahe() -> cv2.CLAHE:
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))


def rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate clockwise by 0, 90, 180 or 270 degrees."""
    if rotation == 0:
        return image
    return cv2.rotate(image, _ROTATE_CODES[rotation])


def _check_rotation(rotation: int) -> int:
    if rotation not in ROTATIONS:
        raise InputError(f"rotation: must be one of 0, 90, 180, 270, got {rotation!r}")
    return int(rotation)


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------


class FrameSource(abc.ABC):
    """A stream of :class:`Frame` objects; a context manager that opens and closes it.

    Subclasses implement ``_open``, ``_read_raw`` and ``_close``. ``read()`` returns ``None`` at
    the end of a finite stream. With ``max_bad_frames`` set, that many consecutive blank
    (uniform) frames raise :class:`NoUsableFramesError`.
    """

    def __init__(
        self,
        *,
        rotation: int = 0,
        detect_ir: bool = True,
        max_bad_frames: int | None = None,
    ) -> None:
        self.rotation = _check_rotation(rotation)
        self.detect_ir = detect_ir
        if max_bad_frames is not None and max_bad_frames < 1:
            raise InputError(f"max_bad_frames: must be at least 1, got {max_bad_frames}")
        self.max_bad_frames = max_bad_frames
        self._open_flag = False
        self._index = 0
        self._bad = 0
        self._clahe: cv2.CLAHE | None = None

    # -- to implement ------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Human-readable name used in messages (device path, file path)."""

    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _read_raw(self) -> np.ndarray | None:
        """The next raw frame (BGR/grey as OpenCV gives it), or None at the end of the stream."""

    @abc.abstractmethod
    def _close(self) -> None: ...

    def _stamp(self) -> float:
        """The timestamp of the frame just read (default: now)."""
        return time.monotonic()

    # -- public interface -------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open_flag

    def open(self) -> Self:
        """Open the source (idempotent) and return it."""
        if not self._open_flag:
            self._index = 0
            self._bad = 0
            self._open()
            self._open_flag = True
        return self

    def close(self) -> None:
        """Release the device or file (idempotent)."""
        if self._open_flag:
            self._open_flag = False
            self._close()

    def read(self) -> Frame | None:
        """The next frame, or None at the end of a file/folder stream."""
        if not self._open_flag:
            raise CameraError(f"{self.name}: source is not open (call open() or use `with`)")
        raw = self._read_raw()
        if raw is None:
            return None
        if self.max_bad_frames is not None:
            if _raw_is_blank(raw):
                self._bad += 1
                if self._bad >= self.max_bad_frames:
                    raise NoUsableFramesError(self.name, self._bad)
            else:
                self._bad = 0
        if self._clahe is None:
            self._clahe = _default_clahe()
        image, is_ir = normalize_frame(raw, detect_ir=self.detect_ir, clahe=self._clahe)
        image = rotate(image, self.rotation)
        frame = Frame(image=image, index=self._index, timestamp=self._stamp(), is_ir=is_ir)
        self._index += 1
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        state = "open" if self._open_flag else "closed"
        return f"{type(self).__name__}({self.name!r}, {state})"


# --------------------------------------------------------------------------------------------
# Camera
# --------------------------------------------------------------------------------------------


def device_path(device: int | str) -> str:
    """``0`` / ``"0"`` -> ``"/dev/video0"``; a path is returned unchanged."""
    if isinstance(device, bool):
        raise InputError(f"camera device: expected an index or /dev/videoN, got {device!r}")
    if isinstance(device, int):
        if device < 0:
            raise InputError(f"camera device: index must be ≥ 0, got {device}")
        return f"/dev/video{device}"
    text = device.strip()
    if text.isdigit():
        return f"/dev/video{int(text)}"
    return text


def processes_using(path: str | Path, *, exclude_self: bool = True) -> list[tuple[int, str]]:
    """``(pid, command name)`` of processes holding ``path`` open, found through /proc/*/fd.

    Like ``fuser``: only processes whose fd tables we may read are seen (all of the user's own).
    Returns an empty list where /proc is unavailable.
    """
    try:
        target = os.path.realpath(path)
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    me = os.getpid()
    found: list[tuple[int, str]] = []
    for pid in pids:
        if exclude_self and pid == me:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if link == target:
                try:
                    with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
                        comm = f.read().strip()
                except OSError:
                    comm = "?"
                found.append((pid, comm))
                break
    return found


def _holders_text(holders: list[tuple[int, str]]) -> str:
    return ", ".join(f"{comm} pid {pid}" for pid, comm in holders)


def _device_group(path: str) -> str:
    try:
        return grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError):
        return "video"


def camera_error_from_oserror(device: str, err: OSError) -> CameraError:
    """Map an OSError from opening/reading a camera node to the specific CameraError.

    ENOENT/ENODEV/ENXIO -> not found; EBUSY -> busy (naming the holders when visible);
    EACCES/EPERM -> permission denied; anything else -> a generic CameraError.
    """
    code = err.errno
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return CameraNotFoundError(device)
    if code == errno.EBUSY:
        return CameraBusyError(device, _holders_text(processes_using(device)))
    if code in (errno.EACCES, errno.EPERM):
        return CameraPermissionError(device, _device_group(device))
    reason = err.strerror or str(err)
    return CameraError(f"camera {device} cannot be opened: {reason}")


def probe_camera(device: int | str) -> str:
    """Check that the camera node exists, can be opened and is a V4L2 capture device; return
    its path.

    Raises CameraNotFoundError, CameraPermissionError, CameraBusyError (when the driver
    refuses a second open with EBUSY) or NotACameraError (``/dev/null``, a file, a V4L2
    metadata node). On systems without device nodes (non-Linux) it only returns the path.
    """
    path = device_path(device)
    if not path.startswith("/dev/") or not os.path.isdir("/dev"):
        return path
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CameraNotFoundError(path) from None
    except OSError as e:
        raise camera_error_from_oserror(path, e) from e
    if not stat.S_ISCHR(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a character device"
        raise NotACameraError(path, kind)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError as e:
        raise camera_error_from_oserror(path, e) from e
    try:
        captures = _query_capture(fd)
    except OSError:
        raise NotACameraError(path, "a character device that answers no V4L2 query") from None
    finally:
        os.close(fd)
    if not captures:
        raise NotACameraError(path, "a V4L2 device without video capture (a metadata node?)")
    return path


# --------------------------------------------------------------------------------------------
# Device discovery and IR detection
# --------------------------------------------------------------------------------------------

#: a camera name that says infrared: "IR Camera", "Integrated IR Camera", "...Infrared",
#: "Windows Hello" modules, and the 31-character sysfs truncation "Integrated Camera:
#: Integrated I" of ThinkPads' IR node (its colour twin ends in "Integrated C")
IR_NAME = re.compile(
    r"(?<![a-z0-9])ir(?![a-z0-9])|infra-?red|infrarot|\bhello\b|: integrated i$", re.IGNORECASE
)
_VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability), 104 bytes
_V4L2_CAP_VIDEO_CAPTURE = 0x00000001
_V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
_V4L2_CAP_DEVICE_CAPS = 0x80000000


@dataclass(frozen=True)
class VideoDevice:
    """One V4L2 capture node. ``index``: N of ``/dev/videoN``; ``name``: the driver's name
    for it (sysfs ``name``, at most 31 characters); ``is_ir``: the name says infrared."""

    index: int
    name: str
    is_ir: bool

    @property
    def path(self) -> str:
        return f"/dev/video{self.index}"

    @property
    def spec(self) -> str:
        """The ``camera.source`` value that selects it."""
        return str(self.index)

    @property
    def label(self) -> str:
        """``"Integrated IR Camera (/dev/video2) (infrared)"``: for a device picker."""
        return f"{self.name or f'Camera {self.index}'} ({self.path})" + (
            " (infrared)" if self.is_ir else ""
        )


def is_ir_name(name: str) -> bool:
    """True when a V4L2 device name says infrared (see :data:`IR_NAME`)."""
    return IR_NAME.search(name.strip()) is not None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _query_capture(fd: int) -> bool:
    """``VIDIOC_QUERYCAP`` on an open node: whether it captures video. OSError (ENOTTY,
    EINVAL) when it is not a V4L2 device."""
    buf = bytearray(104)
    fcntl.ioctl(fd, _VIDIOC_QUERYCAP, buf)
    caps, device_caps = int.from_bytes(buf[84:88], "little"), int.from_bytes(buf[88:92], "little")
    if caps & _V4L2_CAP_DEVICE_CAPS:
        caps = device_caps
    return bool(caps & (_V4L2_CAP_VIDEO_CAPTURE | _V4L2_CAP_VIDEO_CAPTURE_MPLANE))


def v4l2_can_capture(path: str | Path) -> bool | None:
    """Whether the node at ``path`` captures video (``VIDIOC_QUERYCAP``); None when that
    cannot be asked (no such node, busy, no permission, not a V4L2 device)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return _query_capture(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def list_video_devices(
    sysfs_root: str | Path | None = None, *, dev_root: str | Path | None = None
) -> list[VideoDevice]:
    """The V4L2 capture devices, by index, each with its name and whether it is infrared.

    sysfs_root: the ``video4linux`` class folder (default
    :func:`~faceunlock.paths.video4linux_dir`, ``/sys/class/video4linux``); each ``videoN``
    folder in it gives ``name`` and ``index``. Nodes with ``index`` other than 0 are a
    device's extra nodes (UVC metadata) and are left out. dev_root: where the ``videoN``
    nodes are, asked with ``VIDIOC_QUERYCAP`` whether they capture video (default ``/dev``
    when ``sysfs_root`` is the real one, else no node is asked); a node that cannot be asked
    is kept. A missing folder gives an empty list.
    """
    root = Path(sysfs_root) if sysfs_root is not None else video4linux_dir()
    if dev_root is None and root == Path("/sys/class/video4linux"):
        dev_root = "/dev"
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    found: list[VideoDevice] = []
    for entry in entries:
        m = re.fullmatch(r"video(\d+)", entry.name)
        if m is None:
            continue
        node_index = _read_text(entry / "index")
        if node_index is not None and node_index.isdigit() and int(node_index) != 0:
            continue
        if dev_root is not None and v4l2_can_capture(Path(dev_root) / entry.name) is False:
            continue
        name = _read_text(entry / "name") or ""
        found.append(VideoDevice(int(m.group(1)), name, is_ir_name(name)))
    return sorted(found, key=lambda d: d.index)


def looks_infrared(frames: Iterable[np.ndarray], *, tolerance: int = 4) -> bool:
    """True when every raw frame is greyscale: one channel, or three (any order) equal
    within ``tolerance`` on 99 % of the pixels, as IR cameras deliver. frames: uint8/uint16
    (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). No frame: False."""
    seen = False
    for raw in frames:
        seen = True
        img = _to_u8(np.asarray(raw))
        if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
            continue
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise InputError(f"frame: expected an (H, W[, C]) image, got {img.shape}")
        if not is_near_grey(img[:, :, :3], tolerance=tolerance):
            return False
    return seen


def probe_infrared(spec: str | int, frames: int = 5, **settings: Any) -> bool:
    """Open ``spec`` (see :func:`make_source`), read up to ``frames`` frames and tell
    whether they are all IR (greyscale; :attr:`Frame.is_ir`). CameraError when it cannot be
    opened; False when it delivers no frame."""
    if frames < 1:
        raise InputError(f"frames: must be at least 1, got {frames}")
    with make_source(spec, detect_ir=True, **settings) as src:
        flags = []
        for f in src:
            flags.append(f.is_ir)
            if len(flags) >= frames:
                break
    return bool(flags) and all(flags)


def _v4l2_api() -> int:
    api = getattr(cv2, "CAP_V4L2", None)
    if api is None:
        return int(cv2.CAP_ANY)
    try:
        if not cv2.videoio_registry.hasBackend(api):
            return int(cv2.CAP_ANY)
    except (AttributeError, cv2.error):
        pass
    return int(api)


class CameraSource(FrameSource):
    """A live V4L2 camera read through ``cv2.VideoCapture`` (``CAP_V4L2`` where available).

    device: index (``0``) or node (``"/dev/video0"``). width/height/fps are requests; the
    driver may pick the nearest mode (see :attr:`actual_size`, :attr:`fps`). Failed reads are
    retried; ``max_bad_frames`` consecutive failed or blank frames raise NoUsableFramesError.
    """

    def __init__(
        self,
        device: int | str = 0,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        rotation: int = 0,
        *,
        fourcc: str | None = None,
        detect_ir: bool = True,
        max_bad_frames: int = 30,
    ) -> None:
        super().__init__(rotation=rotation, detect_ir=detect_ir, max_bad_frames=max_bad_frames)
        self.device = device
        self.path = device_path(device)
        self.width = width
        self.height = height
        self.requested_fps = fps
        self.fourcc = fourcc
        self.fps: float | None = None
        self.actual_size: tuple[int, int] | None = None
        self._cap: cv2.VideoCapture | None = None
        self._delivered = 0
        self._failed = 0

    @property
    def name(self) -> str:
        return self.path

    def _open(self) -> None:
        path = probe_camera(self.device)
        m = re.fullmatch(r"/dev/video(\d+)", path)
        target: int | str = int(m.group(1)) if m else path
        cap = cv2.VideoCapture(target, _v4l2_api())
        if not cap.isOpened():
            cap.release()
            raise self._diagnose("OpenCV could not start capturing")
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc[:4].ljust(4)))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(self.width))
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(self.height))
        cap.set(cv2.CAP_PROP_FPS, float(self.requested_fps))
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1.0)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and fps > 0 else None
        self.actual_size = (
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        self._cap = cap
        self._delivered = 0
        self._failed = 0

    def _diagnose(self, what: str) -> CameraError:
        """The most specific error for a camera that exists but fails to open or deliver."""
        if os.path.isabs(self.path):
            if not os.path.exists(self.path):
                return CameraNotFoundError(self.path)
            if not os.access(self.path, os.R_OK | os.W_OK):
                return CameraPermissionError(self.path, _device_group(self.path))
            holders = processes_using(self.path)
            if holders:
                return CameraBusyError(self.path, _holders_text(holders))
        return CameraError(f"camera {self.path}: {what}")

    def _read_raw(self) -> np.ndarray | None:
        assert self._cap is not None
        limit = self.max_bad_frames or 30
        while True:
            ok, img = self._cap.read()
            if ok and img is not None and img.size > 0:
                self._failed = 0
                self._delivered += 1
                return np.asarray(img)
            self._failed += 1
            if self._delivered == 0 or not os.path.exists(self.path):
                err = self._diagnose("no frame could be read")
                if type(err) is not CameraError:
                    raise err
            if self._failed >= limit:
                raise NoUsableFramesError(self.path, self._failed)
            time.sleep(0.01)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# --------------------------------------------------------------------------------------------
# Video file
# --------------------------------------------------------------------------------------------


def _pace(due: float, realtime: bool) -> float:
    """Wait until ``due`` (a ``time.monotonic()`` time) when ``realtime``; return ``due``."""
    if realtime:
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    return due


def _too_large(width: int, height: int) -> str:
    return (
        f"frames are {width}×{height} pixels, more than the {MAX_IMAGE_PIXELS / 1e6:.0f} MP "
        "FaceUnlock decodes"
    )


class VideoFileSource(FrameSource):
    """A video file or animated GIF replayed through ``cv2.VideoCapture``.

    loop: restart at the end instead of returning None. realtime: deliver frames no faster
    than the file's frame rate, as a camera would (enrolment, the wizard, ``auth``/``test``
    and latency benchmarks); with ``drop_late`` also skip frames whose time has passed, as a
    live camera would when the consumer is slow. Frame timestamps follow the file's timeline
    either way (see :class:`Frame`).
    """

    def __init__(
        self,
        path: str | Path,
        loop: bool = False,
        rotation: int = 0,
        realtime: bool = False,
        *,
        drop_late: bool = False,
        detect_ir: bool = True,
        max_bad_frames: int | None = None,
    ) -> None:
        super().__init__(rotation=rotation, detect_ir=detect_ir, max_bad_frames=max_bad_frames)
        self.path = Path(path)
        self.loop = loop
        self.realtime = realtime
        self.drop_late = drop_late
        self.fps: float | None = None
        self.frame_count: int | None = None
        self._cap: cv2.VideoCapture | None = None
        self._pending: np.ndarray | None = None
        self._t0 = 0.0
        self._pos = 0  # frames consumed from the timeline (for pacing and timestamps)
        self._due = 0.0  # the timestamp of the frame just read

    @property
    def name(self) -> str:
        return str(self.path)

    def _start(self) -> np.ndarray:
        """Open the capture and read its first frame (to prove the file is a video)."""
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(self.path, "cannot be opened as a video (unsupported or corrupt)")
        # the frame size from the container's header, before a frame is decoded
        w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if math.isfinite(w) and math.isfinite(h) and w * h > MAX_IMAGE_PIXELS:
            cap.release()
            raise SourceError(self.path, _too_large(int(w), int(h)))
        ok, first = cap.read()
        if not ok or first is None or first.size == 0:
            cap.release()
            raise SourceError(self.path, "contains no readable video frames")
        if first.shape[0] * first.shape[1] > MAX_IMAGE_PIXELS:
            cap.release()
            raise SourceError(self.path, _too_large(first.shape[1], first.shape[0]))
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps <= 1000 else None
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and count > 0 else None
        self._cap = cap
        return np.asarray(first)

    def _open(self) -> None:
        if not self.path.exists():
            raise SourceError(self.path, "file not found")
        if not self.path.is_file():
            raise SourceError(self.path, "not a regular file")
        if not os.access(self.path, os.R_OK):
            raise SourceError(self.path, "permission denied")
        self._pending = self._start()
        self._pos = 0
        self._t0 = time.monotonic()

    def _next_from_file(self) -> np.ndarray | None:
        if self._pending is not None:
            img, self._pending = self._pending, None
            return img
        assert self._cap is not None
        ok, img = self._cap.read()
        if ok and img is not None and img.size > 0:
            if img.shape[0] * img.shape[1] > MAX_IMAGE_PIXELS:  # a stream that changes size
                raise SourceError(self.path, _too_large(img.shape[1], img.shape[0]))
            return np.asarray(img)
        if not self.loop:
            return None
        self._cap.release()
        self._cap = None
        return self._start()

    def _read_raw(self) -> np.ndarray | None:
        period = 1.0 / (self.fps or _FALLBACK_FPS)
        if self.realtime and self.drop_late:
            due = int((time.monotonic() - self._t0) / period)
            while self._pos < due:
                if self._next_from_file() is None:
                    return None
                self._pos += 1
        img = self._next_from_file()
        if img is None:
            return None
        self._due = _pace(self._t0 + self._pos * period, self.realtime)
        self._pos += 1
        return img

    def _stamp(self) -> float:
        return self._due

    def _close(self) -> None:
        self._pending = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None


# --------------------------------------------------------------------------------------------
# Image folder
# --------------------------------------------------------------------------------------------


def _natural_key(p: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural order (``2.png`` before ``10.png``)."""
    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    ]
    return sorted(files, key=_natural_key)


class ImageFolderSource(FrameSource):
    """The image files of a folder, one frame each, in natural sort order.

    Files keep their channel layout when decoded, so greyscale IR captures are detected as IR.
    The folder plays as a camera at ``fps`` frames per second (default 25): frame timestamps
    follow that timeline, and with ``realtime`` frames are delivered no faster than it.
    """

    def __init__(
        self,
        path: str | Path,
        rotation: int = 0,
        *,
        loop: bool = False,
        fps: float | None = None,
        realtime: bool = False,
        detect_ir: bool = True,
        max_bad_frames: int | None = None,
    ) -> None:
        super().__init__(rotation=rotation, detect_ir=detect_ir, max_bad_frames=max_bad_frames)
        if fps is not None and not (math.isfinite(fps) and 0 < fps <= 1000):
            raise InputError(f"fps: must be between 0 and 1000, got {fps!r}")
        self.path = Path(path)
        self.loop = loop
        self.fps = float(fps) if fps is not None else _FALLBACK_FPS
        self.realtime = realtime
        self.files: list[Path] = []
        self._pos = 0
        self._t0 = 0.0
        self._frames = 0  # frames delivered since opening (the timeline position)
        self._due = 0.0

    @property
    def name(self) -> str:
        return str(self.path)

    def _open(self) -> None:
        if not self.path.exists():
            raise SourceError(self.path, "folder not found")
        if not self.path.is_dir():
            raise SourceError(self.path, "not a folder")
        try:
            files = list_images(self.path)
        except OSError as e:
            raise SourceError(self.path, f"cannot be listed ({e.strerror})") from e
        if not files:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise SourceError(self.path, f"contains no image files ({suffixes})")
        self.files = files
        self._pos = 0
        self._frames = 0
        self._t0 = time.monotonic()

    def _read_raw(self) -> np.ndarray | None:
        if self._pos >= len(self.files):
            if not self.loop:
                return None
            self._pos = 0
        p = self.files[self._pos]
        self._pos += 1
        try:  # size-checked from the header before decoding (faceunlock.MAX_IMAGE_PIXELS)
            img = decode_image(read_image_bytes(p), p, cv2.IMREAD_UNCHANGED)
        except ImageReadError as e:
            raise SourceError(p, e.problem) from None
        self._due = _pace(self._t0 + self._frames / self.fps, self.realtime)
        self._frames += 1
        return img

    def _stamp(self) -> float:
        return self._due

    def _close(self) -> None:
        self._pos = 0


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def _settings_for(cls: type[FrameSource]) -> set[str]:
    params = inspect.signature(cls.__init__).parameters
    return {n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD}


_SOURCE_CLASSES: tuple[type[FrameSource], ...] = (CameraSource, VideoFileSource, ImageFolderSource)


def make_source(spec: str | int, **settings: Any) -> FrameSource:
    """Build (without opening) the source named by ``spec``.

    ``"0"`` / ``0`` / ``"/dev/video0"`` (anything under /dev/) -> :class:`CameraSource`;
    an existing folder -> :class:`ImageFolderSource`; an existing file -> :class:`VideoFileSource`.
    ``settings`` (width, height, fps, rotation, loop, realtime, ...) are passed to the chosen
    class; those it does not take are ignored, so one set of camera settings fits every kind.
    Names no source takes raise InputError; a spec that matches nothing raises SourceError.
    """
    known = set().union(*(_settings_for(c) for c in _SOURCE_CLASSES)) - {"path", "device"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise InputError(
            f"unknown source setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )

    def pick(cls: type[FrameSource]) -> dict[str, Any]:
        accepted = _settings_for(cls)
        return {k: v for k, v in settings.items() if k in accepted}

    no_match = "expected a camera index like 0, /dev/videoN, a video file or an image folder"
    if isinstance(spec, bool) or not isinstance(spec, int | str):
        raise InputError(f"source: expected a string or camera index, got {spec!r}")
    if isinstance(spec, int):
        return CameraSource(spec, **pick(CameraSource))
    text = spec.strip()
    if not text:
        raise SourceError("''", f"empty source ({no_match})")
    p = Path(text).expanduser()
    if text.isdigit():
        return CameraSource(int(text), **pick(CameraSource))
    if text.startswith("/dev/"):
        return CameraSource(text, **pick(CameraSource))
    if p.is_dir():
        return ImageFolderSource(p, **pick(ImageFolderSource))
    if p.is_file():
        return VideoFileSource(p, **pick(VideoFileSource))
    raise SourceError(text, f"no camera, video file or image folder by that name ({no_match})")


def open_source(spec: str | int, **settings: Any) -> FrameSource:
    """:func:`make_source` and open it; use as ``with open_source("0") as src: ...``."""
    return make_source(spec, **settings).open()

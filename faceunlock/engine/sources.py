"""Frame sources behind one interface: a live camera, a replayed video/GIF, or an image folder.

Every source yields :class:`Frame` objects whose ``image`` is RGB ``uint8`` (H, W, 3), whatever
the device or file delivers (BGR, BGRA, greyscale, 16-bit IR). Greyscale and near-grey frames
(typical of IR cameras) are flagged ``is_ir``, contrast-equalised with CLAHE and expanded to
three channels.

Usage::

    with open_source("0", width=640, height=480) as src:
        for frame in src:
            ...

Finding cameras and diagnosing them (V4L2, sysfs, ``/proc``) is :mod:`faceunlock.engine.v4l2`;
its public names are re-exported here for existing importers.

Errors are :class:`~faceunlock.errors.CameraError` subclasses: ``CameraNotFoundError``,
``CameraBusyError``, ``CameraPermissionError``, ``NoUsableFramesError`` and, for files and
folders, ``SourceError``.
"""

from __future__ import annotations

import abc
import contextlib
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import cv2
import numpy as np

from faceunlock import MAX_IMAGE_PIXELS
from faceunlock.engine.imageio import IMAGE_SUFFIXES, decode_image, list_images, read_image_bytes
from faceunlock.engine.quality import is_uniform
from faceunlock.engine.v4l2 import (
    IR_NAME,
    VideoDevice,
    camera_error_from_oserror,
    device_is_ir,
    device_path,
    diagnose_camera,
    is_ir_name,
    list_video_devices,
    probe_camera,
    processes_using,
    v4l2_can_capture,
)
from faceunlock.errors import (
    CameraError,
    ImageReadError,
    InputError,
    NoUsableFramesError,
    SourceError,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "IR_NAME",
    "ROTATIONS",
    "CameraSource",
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "VideoDevice",
    "VideoFileSource",
    "camera_error_from_oserror",
    "device_path",
    "is_ir_name",
    "is_near_grey",
    "list_images",
    "list_video_devices",
    "make_source",
    "normalize_frame",
    "open_source",
    "probe_camera",
    "processes_using",
    "rotate",
    "v4l2_can_capture",
]

ROTATIONS = (0, 90, 180, 270)
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
    ir_sensor: the frame really comes from an infrared sensor: the camera's V4L2 name says
    infrared, or the raw frame had a single channel. Liveness judges only these frames as
    infrared (its physical cues instead of the colour model); a near-grey frame from a colour
    camera (a black-and-white print filling its view) is ``is_ir`` for detection but not
    ``ir_sensor``, so the colour model still judges it.
    """

    image: np.ndarray
    index: int
    timestamp: float
    is_ir: bool = False
    ir_sensor: bool = False


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
        #: the source knows it is an infrared camera (see :attr:`Frame.ir_sensor`)
        self._ir_device = False

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
        mono = isinstance(raw, np.ndarray) and (
            raw.ndim == 2 or (raw.ndim == 3 and raw.shape[2] == 1)
        )
        image, is_ir = normalize_frame(raw, detect_ir=self.detect_ir, clahe=self._clahe)
        image = rotate(image, self.rotation)
        frame = Frame(image=image, index=self._index, timestamp=self._stamp(), is_ir=is_ir,
                      ir_sensor=is_ir and (mono or self._ir_device))
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
        fps: float = 30,
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
        self._ir_device = device_is_ir(path)
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
        return diagnose_camera(self.path, what)

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


def make_source(
    spec: str | int,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    rotation: int = 0,
    fourcc: str | None = None,
    loop: bool = False,
    realtime: bool = False,
    drop_late: bool = False,
    detect_ir: bool = True,
    max_bad_frames: int | None = None,
) -> FrameSource:
    """Build (without opening) the source named by ``spec``.

    ``"0"`` / ``0`` / ``"/dev/video0"`` (anything under /dev/) -> :class:`CameraSource`;
    an existing folder -> :class:`ImageFolderSource`; an existing file -> :class:`VideoFileSource`.
    One set of settings fits every kind; each kind takes the ones that apply to it and ignores
    the rest: a camera ``width``, ``height``, ``fps`` (requests; None: 640, 480, 30) and
    ``fourcc``; a video file ``loop``, ``realtime`` and ``drop_late``; an image folder ``fps``
    (its timeline; None: 25), ``loop`` and ``realtime``; all of them ``rotation``,
    ``detect_ir`` and ``max_bad_frames`` (None: the kind's default). A misspelt keyword is a
    TypeError; a spec that matches nothing raises SourceError.
    """
    no_match = "expected a camera index like 0, /dev/videoN, a video file or an image folder"
    common: dict[str, Any] = {"rotation": rotation, "detect_ir": detect_ir}
    if max_bad_frames is not None:
        common["max_bad_frames"] = max_bad_frames

    def camera(device: int | str) -> CameraSource:
        requests: dict[str, Any] = {"width": width, "height": height, "fps": fps}
        given = {k: v for k, v in requests.items() if v is not None}
        return CameraSource(device, fourcc=fourcc, **given, **common)

    if isinstance(spec, bool) or not isinstance(spec, int | str):
        raise InputError(f"source: expected a string or camera index, got {spec!r}")
    if isinstance(spec, int):
        return camera(spec)
    text = spec.strip()
    if not text:
        raise SourceError("''", f"empty source ({no_match})")
    p = Path(text).expanduser()
    if text.isdigit():
        return camera(int(text))
    if text.startswith("/dev/"):
        return camera(text)
    if p.is_dir():
        return ImageFolderSource(p, loop=loop, fps=fps, realtime=realtime, **common)
    if p.is_file():
        return VideoFileSource(p, loop=loop, realtime=realtime, drop_late=drop_late, **common)
    raise SourceError(text, f"no camera, video file or image folder by that name ({no_match})")


def open_source(spec: str | int, **settings: Any) -> FrameSource:
    """:func:`make_source` (same keywords) and open it; use as
    ``with open_source("0") as src: ...``."""
    return make_source(spec, **settings).open()

"""V4L2 cameras: finding them, and saying precisely why one cannot be used.

Discovery: :func:`list_video_devices` lists the capture nodes with the driver's name for each
(from sysfs, ``/sys/class/video4linux``) and flags the infrared ones by name
(:func:`is_ir_name`); :func:`v4l2_can_capture` asks a node with ``VIDIOC_QUERYCAP``.

Diagnostics: :func:`probe_camera` checks a node before OpenCV opens it, and
:func:`camera_error_from_oserror` turns an ``OSError`` into the specific
:class:`~faceunlock.errors.CameraError` (not found, busy naming the processes that hold it
(:func:`processes_using`), permission naming the device's group, not a camera).

Linux only where it matters; elsewhere the probes return what they can (an empty list, the
path unchanged). No OpenCV here: :class:`~faceunlock.engine.sources.CameraSource` uses this.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from faceunlock.errors import (
    CameraBusyError,
    CameraError,
    CameraNotFoundError,
    CameraPermissionError,
    InputError,
    NotACameraError,
)
from faceunlock.paths import video4linux_dir

# --------------------------------------------------------------------------------------------
# Diagnostics
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


def diagnose_camera(path: str, what: str) -> CameraError:
    """The most specific error for a camera node that exists but fails to open or deliver:
    gone, not readable and writable (naming its group), held by other processes (naming
    them), else a plain CameraError saying ``what`` failed."""
    if os.path.isabs(path):
        if not os.path.exists(path):
            return CameraNotFoundError(path)
        if not os.access(path, os.R_OK | os.W_OK):
            return CameraPermissionError(path, _device_group(path))
        holders = processes_using(path)
        if holders:
            return CameraBusyError(path, _holders_text(holders))
    return CameraError(f"camera {path}: {what}")


# --------------------------------------------------------------------------------------------
# Discovery
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


def device_is_ir(path: str, sysfs_root: str | Path | None = None) -> bool:
    """Whether the V4L2 node ``path`` (``/dev/videoN``, symlinks resolved) belongs to a device
    whose sysfs name says infrared. False when it cannot be told (no sysfs entry, another
    kind of path)."""
    try:
        real = os.path.realpath(path)
    except OSError:
        return False
    m = re.fullmatch(r"/dev/video(\d+)", real)
    if m is None:
        return False
    root = Path(sysfs_root) if sysfs_root is not None else video4linux_dir()
    return is_ir_name(_read_text(root / f"video{m.group(1)}" / "name") or "")


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

"""File helpers of the template store: private folders, exclusive creation, bounded reads,
the ownership check, and the per-folder write lock (a ``threading.RLock`` around an exclusive
``flock``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from faceunlock.errors import TemplateCorruptError, TemplateUnsafeError, TemplateWriteError
from faceunlock.fileio import fsync_dir, write_temp_file

MAX_FILE_SIZE = 64 << 20
"""Larger files are refused unread: no template comes near it."""


def _ensure_private_dir(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    if d.stat().st_mode & 0o077:
        os.chmod(d, 0o700)


def _create_exclusive(path: Path, data: bytes) -> None:
    """Create ``path`` (0600) with ``data`` unless it already exists (then keep the existing
    file): temp file + fsync + ``link``, so a concurrent creator never gets a second key."""
    tmp = write_temp_file(path.parent, path.name, data, 0o600)
    try:
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_SIZE:
            raise TemplateCorruptError(path, f"file is {size} bytes, larger than any template")
        return path.read_bytes()
    except OSError as e:
        raise TemplateCorruptError(path, f"cannot be read ({e.strerror})") from e


def _check_not_shared(path: Path, st: os.stat_result, what: str, fix: str) -> None:
    """Refuse ``path`` when another account could have written or replaced it: owned by
    another uid, or writable by group or others (as the key files of the system copy are)."""
    me = os.geteuid()
    if st.st_uid != me:
        raise TemplateUnsafeError(
            path,
            f"{what} is owned by uid {st.st_uid}, not by uid {me} (you): it may have been put "
            f"there by someone else, so it is not used; {fix}",
        )
    if st.st_mode & 0o022:
        raise TemplateUnsafeError(
            path,
            f"{what} has mode {stat.S_IMODE(st.st_mode):04o}: other users may write to it and "
            f"could have replaced your face template, so it is not used; {fix}",
        )


class _DirLock:
    """One directory's write lock in this process: a ``threading.RLock`` (threads of the
    process) around an exclusive ``flock`` of the directory (other processes), held while
    ``depth`` > 0, so that ``save`` inside ``update`` does not lock against itself."""

    def __init__(self) -> None:
        self.rlock = threading.RLock()
        self.fd: int | None = None
        self.depth = 0


_DIR_LOCKS: dict[str, _DirLock] = {}
_DIR_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _locked_dir(d: Path) -> Iterator[None]:
    """Hold the exclusive write lock of directory ``d`` (which must exist). Blocks while
    another process or thread holds it; re-entrant within a thread."""
    key = os.path.realpath(d)
    with _DIR_LOCKS_GUARD:
        held = _DIR_LOCKS.setdefault(key, _DirLock())
    with held.rlock:
        if held.depth == 0:
            try:
                fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise TemplateWriteError(
                    d, f"cannot open the folder to lock it ({e.strerror})"
                ) from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:
                os.close(fd)
                raise TemplateWriteError(d, f"cannot lock the folder ({e.strerror})") from e
            held.fd = fd
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.fd is not None:
                os.close(held.fd)  # closing the last descriptor releases the flock
                held.fd = None


def _try_lock_dir(d: Path) -> int | None:
    """A descriptor of ``d`` holding its flock when nobody else holds it, else None."""
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd

"""Crash-safe file writing, below every other layer (config, engine, app use it).

:func:`atomic_write_bytes` writes a temp file beside the target, fsyncs it, renames it into
place and fsyncs the folder: a reader sees the old file or the new one, never a torn one.
:func:`write_temp_file` and :func:`temp_files` are its two halves for callers that link
instead of rename (the template store) and for sweeping what a killed writer left.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from faceunlock.errors import InputError

#: every temp file of :func:`write_temp_file` is ``.<name>.<random>.faceunlock-tmp``
TEMP_SUFFIX = ".faceunlock-tmp"
#: what ``tempfile.mkstemp`` made before the suffix existed: ``.<name>.<8 random characters>``
_LEGACY_TEMP = re.compile(r"[a-z0-9_]{8}")


def fsync_dir(d: str | Path) -> None:
    """Flush a directory entry (after a rename or link), best effort."""
    try:
        fd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_temp_file(directory: Path, name: str, data: bytes, mode: int) -> str:
    """Write ``data`` to a new temp file beside ``directory/name`` (fsynced, ``mode``); return
    its path. The caller renames or links it into place and removes it on failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def temp_files(directory: Path, name: str | None = None, legacy_age: float = 600.0) -> list[Path]:
    """Temp files that :func:`write_temp_file` left in ``directory`` (a writer killed between
    writing and renaming leaves one): ``.<name>.*.faceunlock-tmp`` (any name when ``name`` is
    None), plus with a ``name`` the unsuffixed ``.<name>.<8 characters>`` of earlier releases
    once older than ``legacy_age`` seconds. Whether they are stale is the caller's call: only
    it knows whether another writer may be at work."""
    out: list[Path] = []
    head = "." if name is None else f".{name}."
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return out
    now = time.time()
    for e in entries:
        if not e.name.startswith(head) or not e.is_file(follow_symlinks=False):
            continue
        rest = e.name[len(head):]
        if rest.endswith(TEMP_SUFFIX):
            out.append(Path(e.path))
        elif name is not None and _LEGACY_TEMP.fullmatch(rest):
            try:
                if now - e.stat(follow_symlinks=False).st_mtime > legacy_age:
                    out.append(Path(e.path))
            except OSError:
                continue
    return sorted(out)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through, atomically like :func:`atomic_write_bytes`
    but without holding the content in memory: the temp file beside ``path`` is fsynced and
    renamed into place when the block ends, and removed when it raises."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=TEMP_SUFFIX, dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent)


def check_output_file(out: Path, option: str = "--out") -> None:
    """InputError, before any work is done, when ``out`` cannot be written as a file: it is a
    folder, or the folder it goes in (created if missing) takes no new files (read-only,
    no permission, /proc). Leaves nothing behind. ``option`` names it in the message."""
    if out.is_dir():
        raise InputError(
            f"{option} {out}: is a folder; give a file name, e.g. {out / 'embeddings.npz'}"
        )
    folder = out.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{option} {out}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise InputError(
            f"{option} {out}: no file can be written in {folder} ({e.strerror or e})"
        ) from None


def atomic_write_bytes(path: str | Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same dir, fsync, rename, fsync
    of the directory)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temp_file(p.parent, p.name, data, mode)
    try:
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent)

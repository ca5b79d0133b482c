"""Model files and their JSON sidecars.

Every model in ``models/`` is accompanied by ``<file>.json`` holding at least::

    {"file": "encoder.onnx", "sha256": "...", "source": "...", "licence": "...",
     "input": {...}, "metric": "...", "default_threshold": ...}

:func:`load_model_bytes` reads a model, checks it against the sidecar's sha256 and raises
:class:`~faceunlock.errors.ModelError` naming the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from faceunlock.errors import ModelError
from faceunlock.paths import models_dir

REQUIRED_KEYS = ("file", "sha256", "source", "licence", "input")
#: every temp file of :func:`write_temp_file` is ``.<name>.<random>.faceunlock-tmp``
TEMP_SUFFIX = ".faceunlock-tmp"
#: what ``tempfile.mkstemp`` made before the suffix existed: ``.<name>.<8 random characters>``
_LEGACY_TEMP = re.compile(r"[a-z0-9_]{8}")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sidecar_path(model_path: str | Path) -> Path:
    p = Path(model_path)
    return p.with_name(p.name + ".json")


def resolve_model(name_or_path: str | Path | None, default_name: str) -> Path:
    """A model path: explicit path if given, else ``models_dir()/default_name``."""
    if name_or_path is None:
        return models_dir() / default_name
    return Path(name_or_path)


def load_sidecar(model_path: str | Path) -> dict[str, Any]:
    """Read and validate the sidecar of ``model_path``."""
    sc = sidecar_path(model_path)
    if not sc.is_file():
        raise ModelError(sc, "sidecar JSON is missing")
    try:
        meta = json.loads(sc.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(sc, f"sidecar is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise ModelError(sc, "sidecar must be a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(sc, f"sidecar lacks required keys: {', '.join(missing)}")
    return meta


def load_model_bytes(model_path: str | Path) -> tuple[bytes, dict[str, Any]]:
    """Read a model file and its sidecar, verifying the sha256.

    Raises ModelError when the file is missing, unreadable, empty, or its digest differs.
    """
    p = Path(model_path)
    if not p.is_file():
        raise ModelError(p, "file not found (run `python -m faceunlock.training.convert_dlib` "
                         "or reinstall FaceUnlock)")
    meta = load_sidecar(p)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelError(p, f"cannot be read ({e.strerror})") from e
    if not data:
        raise ModelError(p, "file is empty")
    digest = sha256_bytes(data)
    if digest != meta["sha256"]:
        raise ModelError(
            p,
            f"sha256 mismatch: file is {digest[:16]}…, sidecar expects {str(meta['sha256'])[:16]}… "
            "(file corrupt, truncated or replaced)",
        )
    return data, meta


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


def write_sidecar(model_path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``<model>.json`` with the model's sha256 filled in; keys sorted, stable output."""
    p = Path(model_path)
    full = dict(meta)
    full["file"] = p.name
    full["sha256"] = sha256_file(p)
    sc = sidecar_path(p)
    atomic_write_bytes(sc, (json.dumps(full, indent=2, sort_keys=True) + "\n").encode())
    return sc

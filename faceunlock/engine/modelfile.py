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
from pathlib import Path
from typing import Any

from faceunlock.errors import ModelError
from faceunlock.fileio import atomic_write_bytes
from faceunlock.paths import models_dir

REQUIRED_KEYS = ("file", "sha256", "source", "licence", "input")


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
        raise ModelError(p, "file not found: reinstall FaceUnlock (in a checkout: "
                         "`git checkout -- models/`)")
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


def write_sidecar(model_path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``<model>.json`` with the model's sha256 filled in; keys sorted, stable output."""
    p = Path(model_path)
    full = dict(meta)
    full["file"] = p.name
    full["sha256"] = sha256_file(p)
    sc = sidecar_path(p)
    atomic_write_bytes(sc, (json.dumps(full, indent=2, sort_keys=True) + "\n").encode())
    return sc

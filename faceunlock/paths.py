"""Every file location FaceUnlock uses, computed on call (never at import time)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

MODELS_ENV = "FACEUNLOCK_MODELS"


def models_dir() -> Path:
    """Directory holding ``encoder.onnx``, ``detector.onnx``, ``landmarks5.npz`` and sidecars.

    Order: ``$FACEUNLOCK_MODELS``; the ``models/`` folder beside the package (source checkout
    or editable install); ``<prefix>/share/faceunlock/models`` (wheel install).
    """
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parent.parent / "models"
    if beside.is_dir():
        return beside
    return Path(sys.prefix) / "share" / "faceunlock" / "models"


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The workplace's ``../shared`` beside the checkout (datasets, notes); may not exist."""
    env = os.environ.get("FACEUNLOCK_SHARED")
    if env:
        return Path(env)
    return repo_root().parent / "shared"

"""Fixtures of the desktop-app tests: a small config, a throw-away template store and the
woman's webcam clip as an image folder (skipped when ../shared is absent)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import pytest

# the QApplication is session-scoped and created before function fixtures run, so the
# platform must be chosen at import time (tests/conftest.py sets it too late for it)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6")

from faceunlock.config import Config
from faceunlock.engine.sources import VideoFileSource

FEMALE = "head-pose-face-detection-female.gif"


@pytest.fixture()
def cfg(clip_config: Callable[[Mapping[str, str]], Config]) -> Config:
    """The clips' detector sizes; 3 anchors keep the tests short."""
    return clip_config({"enrol.anchors": "3"})


@pytest.fixture(scope="session")
def female_folder(clips_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The woman's clip as numbered PNGs."""
    d = tmp_path_factory.mktemp("female")
    with VideoFileSource(clips_dir / FEMALE) as src:
        for f in src:
            cv2.imwrite(str(d / f"{f.index:04d}.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    return d

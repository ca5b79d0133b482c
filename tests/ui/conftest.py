"""Fixtures of the desktop-app tests: a small config, a throw-away template store and the
woman's webcam clip as an image folder (skipped when ../shared is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import pytest

# the QApplication is session-scoped and created before function fixtures run, so the
# platform must be chosen at import time (tests/conftest.py sets it too late for it)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6")

from faceunlock.config import Config, config_set, save_config
from faceunlock.engine.sources import VideoFileSource
from faceunlock.engine.templates import StaticKeyProvider, TemplateStore

FEMALE = "head-pose-face-detection-female.gif"


@pytest.fixture()
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """Faces in the clips are 57-70 px: detect from 50 px; 3 anchors keep the test short."""
    c = Config()
    for k, v in (
        ("detector.min_face", "50"),
        ("detector.max_face", "160"),
        ("enrol.anchors", "3"),
    ):
        c = config_set(c, k, v)
    path = tmp_path / "config.toml"
    save_config(c, path)
    monkeypatch.setenv("FACEUNLOCK_CONFIG", str(path))
    return c


@pytest.fixture()
def store(tmp_path: Path) -> TemplateStore:
    return TemplateStore(tmp_path / "templates", StaticKeyProvider(os.urandom(32)))


@pytest.fixture(scope="session")
def female_folder(clips_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The woman's clip as numbered PNGs."""
    d = tmp_path_factory.mktemp("female")
    with VideoFileSource(clips_dir / FEMALE) as src:
        for f in src:
            cv2.imwrite(str(d / f"{f.index:04d}.png"), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    return d

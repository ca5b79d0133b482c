"""Fixtures of the desktop-app tests: a small config, a throw-away template store, the
woman's webcam clip as an image folder (skipped when ../shared is absent) and a real X server
(Xvfb, skipped when it is not installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
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


@pytest.fixture()
def xvfb_display() -> Iterator[str]:
    """A fresh Xvfb (1024x768x24, no TCP) for the test: its DISPLAY, e.g. ``":1"``."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian: apt-get install xvfb)")
    r, wfd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(wfd), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(wfd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(wfd)
    with os.fdopen(r) as f:
        num = f.readline().strip()
    try:
        if not num:
            pytest.skip("Xvfb did not start")
        yield f":{num}"
    finally:
        proc.terminate()
        proc.wait(10)

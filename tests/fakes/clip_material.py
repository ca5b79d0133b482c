"""The webcam clips of ../shared/datasets/clips as test material: their frames, frames written
as PNG folders (an image-folder camera), a config for their small faces, and alice enrolled
from the first half of the woman's clip. Shared by the watcher, logind, desktop-app,
end-to-end and PAM tests."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from faceunlock.config import Config, config_set

FEMALE = "head-pose-face-detection-female.gif"
MALE = "head-pose-face-detection-male.gif"
BOTH = "head-pose-face-detection-female-and-male.gif"


def clip_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a clip, RGB."""
    from faceunlock.engine.sources import VideoFileSource

    with VideoFileSource(path) as src:
        return [f.image for f in src]


def png_folder(d: Path, frames: list[np.ndarray]) -> Path:
    """``frames`` written to a new folder ``d`` as 0000.png, 0001.png, ..."""
    d.mkdir(parents=True)
    for i, im in enumerate(frames):
        cv2.imwrite(str(d / f"{i:04d}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    return d


def clip_config(**extra: str) -> Config:
    """A config for the clips' faces (57-70 px: detect from 50 px, up to 160), with ``extra``
    keys changed (``clip_config(**{"enrol.anchors": "3"})``)."""
    c = Config()
    for k, v in {"detector.min_face": "50", "detector.max_face": "160", **extra}.items():
        c = config_set(c, k, v)
    return c


def watcher_config(**extra: str) -> Config:
    """:func:`clip_config` with a 10 s attempt timeout: the watcher and logind tests'."""
    return clip_config(**{"auth.timeout": "10", **extra})


class EnrolledClips:
    """``user`` enrolled (random static key, under ``root``) from the first half of the woman's
    clip; ``genuine``: her second half and ``impostor``: 8 frames of the man, as PNG folders."""

    def __init__(self, root: Path, clips: Path, user: str = "alice") -> None:
        from faceunlock.engine import service
        from faceunlock.engine.sources import ImageFolderSource
        from faceunlock.engine.templates import StaticKeyProvider, TemplateStore

        self.key = os.urandom(32)
        self.store = TemplateStore(root / "templates", StaticKeyProvider(self.key))
        fem = clip_frames(clips / FEMALE)
        half = len(fem) // 2
        cfg = watcher_config()
        service.enrol(self.store, user, cfg,
                      ImageFolderSource(png_folder(root / "enrol", fem[:half])),
                      params=service.enrol_params(cfg, guided=False))
        self.genuine = png_folder(root / "genuine", fem[half:])
        self.impostor = png_folder(root / "impostor", clip_frames(clips / MALE)[:8])


#: enrolment-wizard settings for tests where the capture's pacing is not the point: no settle
#: time after a prompt and no gap between anchors (the poses are still required); pass with
#: ``realtime=False`` so a clip decodes as fast as it can
FAST_CAPTURE = {"settle_seconds": 0.0, "min_anchor_gap": 0.0}

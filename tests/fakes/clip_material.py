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
        from faceunlock.app import service
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


#: MediaPipe's eye contours (upper and lower lid), image-left and image-right eye
LID_RINGS = ((33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
             (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249))


def paint_closed(image: np.ndarray, points: np.ndarray, grow: float = 2.4,
                 soft: float = 2.0) -> np.ndarray:
    """``image`` with both eyes painted shut: the region inside each eye's lid contour
    (from the mesh ``points`` of this frame; widened 1.2x along the eye, ``grow`` x across
    it, to cover lashes and the lid crease) filled with the skin colour sampled half an eye
    width below the eye, with a Gaussian-soft edge (``soft`` px)."""
    out: np.ndarray = image.astype(np.float32)
    for ring in LID_RINGS:
        poly = points[list(ring), :2].astype(np.float64)
        c = poly.mean(axis=0)
        poly = c + (poly - c) * np.array([1.2, grow])
        width = float(np.linalg.norm(points[ring[0], :2] - points[ring[8], :2]))
        sx, sy = int(np.rint(c[0])), int(np.rint(c[1] + 0.5 * width))
        skin = np.median(image[sy - 1:sy + 2, sx - 2:sx + 3].reshape(-1, 3), axis=0)
        hard = np.zeros(image.shape[:2], np.float32)
        cv2.fillPoly(hard, [np.round(poly * 4).astype(np.int32)], 1.0, cv2.LINE_AA, shift=2)
        mask = np.asarray(cv2.GaussianBlur(hard, (0, 0), soft))[..., None]
        out = out * (1 - mask) + skin * mask
    return np.clip(out, 0, 255).astype(np.uint8)

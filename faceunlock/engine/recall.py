"""Fallback detection passes for frames where the first pass finds no face.

The MMOD detector's smallest window is 80 px (it finds faces from ~73 px), and under harsh,
one-sided light a face that fills the image often scores below the threshold. When the
pipeline's own pass finds nothing, :class:`FallbackCascade` tries, in order, stopping at the
first pass that finds a face:

1. ``clahe``: the image with local contrast normalised (CLAHE on the L channel of CIE Lab,
   clip limit 2, 8x8 tiles), searched by the pipeline's own detector (its face sizes and
   scaling): side-lit and low-contrast faces.
2. ``clahe+up2``: the same image upsampled 2x (bilinear), searched for faces of 80-170 px
   there, i.e. 40-85 px in the frame: a webcam user 1-1.5 m away, LFW's 150x150 crops
   (faces ~60 px). In a 640x480 frame this pass costs ~3.5 full scans. Skipped when the
   pipeline's detector already enlarges the image (faces under 80 px configured).

The order and the passes were chosen by measurement on LFW DevTest proxies (see
``benchmarks/detection_recall.py`` and ``docs/detection.md``): CLAHE alone rescues most
side-lit faces at the cost of one full scan; upsampling the CLAHE image finds every small face
that upsampling the plain image finds, and more side-lit ones, so a plain upsampled pass adds
nothing. In-plane rotations up to ±30° and greyscale images need no pass of their own (the
first pass already finds them). Boxes are in the input image's coordinates, dlib rectangle
convention, like :class:`~faceunlock.engine.detector.FaceDetector`'s.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from faceunlock.engine.detector import WINDOW, Detection, FaceDetector
from faceunlock.engine.imageio import as_rgb_u8

#: the passes, in the order they run
PASSES = ("clahe", "clahe+up2")
CLAHE_CLIP = 2.0
CLAHE_TILES = 8
#: the upsampled pass: image scale, and the largest face searched (in upsampled pixels)
UPSAMPLE = 2.0
UPSAMPLED_MAX_FACE = 170


def clahe(image: np.ndarray) -> np.ndarray:
    """RGB uint8 image with CLAHE applied to its lightness (CIE Lab L), colours kept."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    op = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=(CLAHE_TILES, CLAHE_TILES))
    lab[..., 0] = op.apply(np.ascontiguousarray(lab[..., 0]))
    return np.asarray(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))


class FallbackCascade:
    """The fallback passes (see the module docstring). Models load lazily, on first use.

    ``last_passes`` names the passes the last :meth:`detect` call ran (the last one is the
    one that found the faces, if any did).
    """

    def __init__(self, primary: FaceDetector, model_path: str | Path | None = None, *,
                 threads: int | None = None) -> None:
        #: the pipeline's own detector: the ``clahe`` pass runs it, so the configured face
        #: sizes and scaling hold there too
        self.primary = primary
        #: the upsampled pass's detector (``model_path``: its ONNX file, by default the
        #: primary's)
        self.small = FaceDetector(model_path if model_path is not None else primary.path,
                                  min_face=WINDOW, max_face=UPSAMPLED_MAX_FACE, threads=threads)
        self.last_passes: tuple[str, ...] = ()

    @property
    def passes(self) -> tuple[str, ...]:
        """The passes this cascade runs: without ``clahe+up2`` when the primary detector
        already enlarges the image (``upsample``, or ``downscale`` below 1: faces under 80 px
        were asked for and are searched already, down to the configured size)."""
        p = self.primary
        enlarges = p.upsample > 0 or (p.downscale is not None and p.downscale < 1.0)
        return PASSES[:1] if enlarges else PASSES

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces found by the first pass that finds any, best score first; [] if none."""
        image = as_rgb_u8(image)
        ran: list[str] = []
        dets: list[Detection] = []
        norm = clahe(image)
        for name in self.passes:
            ran.append(name)
            dets = self.primary.detect(norm) if name == "clahe" else self._upsampled(norm)
            if dets:
                break
        self.last_passes = tuple(ran)
        return dets

    def _upsampled(self, image: np.ndarray) -> list[Detection]:
        up = cv2.resize(image, None, fx=UPSAMPLE, fy=UPSAMPLE, interpolation=cv2.INTER_LINEAR)
        s = 1.0 / UPSAMPLE
        # inclusive pixel boxes: left edge l*s, right edge (r+1)*s - 1
        return [Detection((d.box[0] * s, d.box[1] * s, (d.box[2] + 1) * s - 1,
                           (d.box[3] + 1) * s - 1), d.score)
                for d in self.small.detect(up)]

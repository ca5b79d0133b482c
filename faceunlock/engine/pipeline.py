"""One pipeline: image -> face observations (box, landmarks, chip, embedding).

    detector (ONNX MMOD) -> 5-point landmarks (numpy ERT) -> 150x150 chip -> encoder (ONNX)

Models load lazily, on first use, and :func:`get_pipeline` keeps one instance per settings per
process, so the PAM helper, the watcher and the CLI each pay the load once.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from faceunlock.engine.align import face_chip
from faceunlock.engine.detector import Detection, FaceDetector
from faceunlock.engine.encoder import FaceEncoder
from faceunlock.engine.imageio import as_rgb_u8
from faceunlock.engine.landmarks import LandmarkPredictor
from faceunlock.paths import models_dir

Box = tuple[float, float, float, float]
Select = Literal["all", "largest", "center"]

CHIP_SIZE = 150
CHIP_PADDING = 0.25
#: side of the fallback box, as a fraction of the shorter image side (LFW protocol)
CENTER_BOX_FRACTION = 0.44


@dataclass(frozen=True)
class FaceObservation:
    """One face in one image.

    box: (left, top, right, bottom) in image pixels; score: detector score (``nan`` for a
    fallback box); landmarks: (5, 2) float32 (x, y); chip: (150, 150, 3) uint8 RGB;
    embedding: (128,) float32 (not L2-normalised; compare with Euclidean distance).
    """

    box: Box
    score: float
    landmarks: np.ndarray
    chip: np.ndarray
    embedding: np.ndarray
    fallback: bool = False

    @property
    def size(self) -> float:
        """Face size in pixels: the box's geometric mean side."""
        w = self.box[2] - self.box[0]
        h = self.box[3] - self.box[1]
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))


@dataclass(frozen=True)
class PipelineSettings:
    """Detector and encoder knobs. See :class:`FaceDetector` for the detector's."""

    min_face: int = 80
    max_face: int | None = None
    downscale: float | None = None
    upsample: int = 0
    flip_average: bool = True
    #: test-time zoom of the chip about its centre before encoding (1.0 = off); see README
    zoom: float = 1.05
    threads: int | None = None
    models: str | None = None


@dataclass
class StageTimes:
    """Milliseconds spent per stage by the last call."""

    detect: float = 0.0
    landmarks: float = 0.0
    align: float = 0.0
    embed: float = 0.0

    @property
    def total(self) -> float:
        return self.detect + self.landmarks + self.align + self.embed


def _box_area(b: Box) -> float:
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def center_box(shape: Sequence[int], fraction: float = CENTER_BOX_FRACTION) -> Box:
    """A square box of ``fraction`` x the shorter side, centred in an (H, W, ...) image."""
    h, w = int(shape[0]), int(shape[1])
    side = fraction * min(h, w)
    cx, cy = w / 2.0, h / 2.0
    return (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))


def select_detections(
    dets: list[Detection], shape: Sequence[int], select: Select
) -> list[Detection]:
    """Order or pick detections: all (by score), the largest, or the one nearest the centre."""
    if select == "all" or not dets:
        return list(dets)
    if select == "largest":
        return [max(dets, key=lambda d: _box_area(d.box))]
    cy, cx = shape[0] / 2.0, shape[1] / 2.0

    def dist(d: Detection) -> float:
        bx = (d.box[0] + d.box[2]) / 2.0
        by = (d.box[1] + d.box[3]) / 2.0
        return float((bx - cx) ** 2 + (by - cy) ** 2)

    return [min(dets, key=dist)]


@dataclass
class Pipeline:
    """Image -> face observations. Thread-compatible, not thread-safe (one per worker)."""

    settings: PipelineSettings = field(default_factory=PipelineSettings)
    times: StageTimes = field(default_factory=StageTimes)

    def __post_init__(self) -> None:
        mdir = Path(self.settings.models) if self.settings.models else models_dir()
        s = self.settings
        self.detector = FaceDetector(
            mdir / "detector.onnx",
            min_face=s.min_face,
            max_face=s.max_face,
            downscale=s.downscale,
            upsample=s.upsample,
            threads=s.threads,
        )
        self.landmarker = LandmarkPredictor(mdir / "landmarks5.npz")
        self.encoder = FaceEncoder(mdir / "encoder.onnx", threads=s.threads)

    @property
    def threshold(self) -> float:
        """The encoder's default same-person threshold (Euclidean)."""
        return float(self.encoder.threshold)

    def detect(self, image: np.ndarray) -> list[Detection]:
        t0 = time.perf_counter()
        dets = self.detector.detect(image)
        self.times.detect = (time.perf_counter() - t0) * 1e3
        return dets

    def observe_boxes(
        self,
        image: np.ndarray,
        boxes: Sequence[Box],
        scores: Sequence[float] | None = None,
        fallback: bool = False,
    ) -> list[FaceObservation]:
        """Landmarks, chips and embeddings for given boxes."""
        image = as_rgb_u8(image)
        if not boxes:
            self.times.landmarks = self.times.align = self.times.embed = 0.0
            return []
        t0 = time.perf_counter()
        lms = [self.landmarker.predict(image, b) for b in boxes]
        t1 = time.perf_counter()
        chips = np.stack([face_chip(image, lm, CHIP_SIZE, CHIP_PADDING) for lm in lms])
        t2 = time.perf_counter()
        embs = self.embed_chips(chips)
        t3 = time.perf_counter()
        self.times.landmarks = (t1 - t0) * 1e3
        self.times.align = (t2 - t1) * 1e3
        self.times.embed = (t3 - t2) * 1e3
        sc = list(scores) if scores is not None else [float("nan")] * len(boxes)
        return [
            FaceObservation(tuple(map(float, b)), float(s), lm, c, e, fallback)  # type: ignore[arg-type]
            for b, s, lm, c, e in zip(boxes, sc, lms, chips, embs, strict=True)
        ]

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 chips -> (N, 128) float32 embeddings.

        With ``zoom`` != 1 each chip is first magnified about its centre (bilinear, edge
        pixels replicated); with ``flip_average`` the embedding is averaged with that of the
        mirrored chip (one batched encoder call). Both were chosen by 10-fold accuracy on LFW
        DevTrain (see README, "Accuracy").
        """
        z = self.settings.zoom
        if z != 1.0:
            c = (CHIP_SIZE - 1) / 2.0
            m = np.array([[z, 0.0, c * (1 - z)], [0.0, z, c * (1 - z)]], np.float64)
            chips = np.stack([
                cv2.warpAffine(x, m, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
                for x in chips
            ])
        if not self.settings.flip_average:
            return self.encoder.embed(chips)
        n = chips.shape[0]
        both = self.encoder.embed(np.concatenate([chips, chips[:, :, ::-1, :]], axis=0))
        return ((both[:n] + both[n:]) / 2.0).astype(np.float32)

    def observe(
        self, image: np.ndarray, select: Select = "all", fallback_center: bool = False
    ) -> list[FaceObservation]:
        """Detect and describe faces.

        select: ``all`` (score order), ``largest`` (a camera in front of the user) or
        ``center`` (LFW). With ``fallback_center`` an image with no detection is described
        from a central box (observation marked ``fallback``).
        """
        image = as_rgb_u8(image)
        dets = select_detections(self.detect(image), image.shape, select)
        if not dets:
            if fallback_center:
                return self.observe_boxes(image, [center_box(image.shape)], fallback=True)
            self.times.landmarks = self.times.align = self.times.embed = 0.0
            return []
        return self.observe_boxes(image, [d.box for d in dets], [d.score for d in dets])


@functools.lru_cache(maxsize=4)
def get_pipeline(settings: PipelineSettings = PipelineSettings()) -> Pipeline:
    """The per-process pipeline for ``settings`` (models load on first use, once)."""
    return Pipeline(settings)


def euclidean(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))

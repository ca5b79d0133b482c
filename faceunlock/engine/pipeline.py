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
from typing import Literal, Protocol

import cv2
import numpy as np

from faceunlock.engine.align import face_chip
from faceunlock.engine.detector import Detection, FaceDetector
from faceunlock.engine.encoder import FaceEncoder
from faceunlock.engine.imageio import as_rgb_u8
from faceunlock.engine.landmarks import LandmarkPredictor
from faceunlock.engine.recall import FallbackCascade
from faceunlock.errors import InputError
from faceunlock.paths import models_dir

Box = tuple[float, float, float, float]
Select = Literal["all", "largest", "whole", "center"]

CHIP_SIZE = 150
#: length of the descriptors of the bundled encoders (dlib's model)
EMBEDDING_DIM = 128
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
    #: test-time zoom of the chip about its centre before encoding (1.0 = off); see docs/accuracy.md
    zoom: float = 1.05
    threads: int | None = None
    models: str | None = None
    #: with ``observe(track=True)``, rescan the whole frame at least every N frames
    full_scan_every: int = 15
    #: encoder precision: ``int8`` (``encoder-int8.onnx``, ~2x faster, same LFW accuracy),
    #: ``fp32`` (``encoder.onnx``, dlib's exact descriptors) or ``auto`` (int8 when the models
    #: directory has it, else fp32: a directory holding only a fine-tuned export still works).
    #: Also picks the detector (``detector-int8.onnx``) of the tracker, the coarse pass and of
    #: full scans that are not dlib's exact pyramid (``FaceDetector.dlib_exact``)
    precision: str = "auto"
    #: frames with no face to follow yet look for big faces first (>= COARSE_FACE_PX, on the
    #: frame halved, ~1/4 of the full scan's pixels), each find then re-detected at full
    #: resolution around itself like a tracked face; the full scan runs only when that finds
    #: nothing. For a camera in front of the user (unlock); a smaller face beside a big one
    #: is then not reported, so enrolment and LFW evaluation leave it off.
    coarse_first: bool = False
    #: when the search finds no face, run the fallback passes (:mod:`faceunlock.engine.recall`:
    #: local contrast normalisation, then 2x upsampling for 40-85 px faces); frames with a
    #: face found never run them
    fallback: bool = True


#: tracking: the region searched is the last face box grown by this many face sizes per side
TRACK_MARGIN = 0.5
#: tracking: the crop is scaled so the last face is exactly the window of the second pyramid
#: level (80 x 1.2): detections there reproduce the last box instead of jumping a level
TRACK_FACE_PX = 96.0
#: tracking: faces up to this size (in crop pixels) are searched, i.e. ~1.5x growth a frame
TRACK_MAX_FACE = 150
#: coarse-first: the frame is halved, so its smallest window (80 px) is a 160 px face
COARSE_DOWNSCALE = 2.0
COARSE_FACE_PX = 160
#: streams (``track``): consecutive frames with no face run the fallback passes on the first
#: and then on every Nth (each costs ~4.5 full scans on a 640x480 frame)
FALLBACK_EVERY_TRACKED = 3
#: streams: the fallback passes are skipped on a frame that has not changed since they last ran
#: and found nothing (a camera with nobody in front): the frame's grey thumbnail of this size
#: (each cell the mean of ~10x10 pixels of a 640x480 frame, sensor noise averaged out) ...
CHANGE_THUMB = (64, 48)
#: ... differs from that frame's by at most this many grey levels in every cell
CHANGE_LEVELS = 8.0


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


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = _box_area(a) + _box_area(b) - inter
    return inter / union if union > 0 else 0.0


def _box_area(b: Box) -> float:
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


def scene_thumbnail(image: np.ndarray) -> np.ndarray:
    """(48, 64) float32 grey thumbnail of an RGB uint8 image (area averaged): what
    :func:`scene_changed` compares."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return np.asarray(cv2.resize(grey, CHANGE_THUMB, interpolation=cv2.INTER_AREA), np.float32)


def scene_changed(a: np.ndarray, b: np.ndarray, levels: float = CHANGE_LEVELS) -> bool:
    """Whether two :func:`scene_thumbnail` s differ by more than ``levels`` in some cell."""
    return bool(np.abs(a - b).max() > levels)


def center_box(shape: Sequence[int], fraction: float = CENTER_BOX_FRACTION) -> Box:
    """A square box of ``fraction`` x the shorter side, centred in an (H, W, ...) image."""
    h, w = int(shape[0]), int(shape[1])
    side = fraction * min(h, w)
    cx, cy = w / 2.0, h / 2.0
    return (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))


def select_detections(
    dets: list[Detection], shape: Sequence[int], select: Select
) -> list[Detection]:
    """Order or pick detections: all (by score), the largest, the largest whole face (the
    largest whose box lies wholly inside the image, else the largest: a face the image's
    border cuts is a partial face, often a bystander at the edge of a photo), or the one
    nearest the centre."""
    if select == "all" or not dets:
        return list(dets)
    if select == "largest":
        return [max(dets, key=lambda d: _box_area(d.box))]
    if select == "whole":
        h, w = float(shape[0]), float(shape[1])

        def whole(d: Detection) -> bool:
            b = d.box
            return b[0] >= 0 and b[1] >= 0 and b[2] <= w and b[3] <= h

        return [max(dets, key=lambda d: (whole(d), _box_area(d.box)))]
    cy, cx = shape[0] / 2.0, shape[1] / 2.0

    def dist(d: Detection) -> float:
        bx = (d.box[0] + d.box[2]) / 2.0
        by = (d.box[1] + d.box[3]) / 2.0
        return float((bx - cx) ** 2 + (by - cy) ** 2)

    return [min(dets, key=dist)]


def zoom_chips(chips: np.ndarray, zoom: float) -> np.ndarray:
    """uint8 (N, 150, 150, 3) chips magnified about their centres by ``zoom`` (bilinear, edge
    pixels replicated): the test-time zoom of :meth:`Pipeline.embed_chips`. The chips
    themselves when ``zoom`` is 1."""
    if zoom == 1.0:
        return chips
    c = (CHIP_SIZE - 1) / 2.0
    m = np.array([[zoom, 0.0, c * (1 - zoom)], [0.0, zoom, c * (1 - zoom)]], np.float64)
    return np.stack([
        cv2.warpAffine(x, m, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
        for x in chips
    ])


PRECISIONS = ("auto", "int8", "fp32")
MODEL_FILES = {
    "encoder": {"fp32": "encoder.onnx", "int8": "encoder-int8.onnx"},
    "detector": {"fp32": "detector.onnx", "int8": "detector-int8.onnx"},
}


def model_path(models: Path, kind: str, precision: str = "auto") -> Path:
    """The ``kind`` (encoder, detector) file of ``models`` for ``precision`` (see
    :attr:`PipelineSettings.precision`). A missing file is reported when it loads."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    files = MODEL_FILES[kind]
    if precision == "auto":
        int8 = models / files["int8"]
        return int8 if int8.is_file() else models / files["fp32"]
    return models / files[precision]


def encoder_path(models: Path, precision: str = "auto") -> Path:
    """The encoder file of ``models`` for ``precision``."""
    return model_path(models, "encoder", precision)


@dataclass
class Pipeline:
    """Image -> face observations. Thread-compatible, not thread-safe (one per worker)."""

    settings: PipelineSettings = field(default_factory=PipelineSettings)
    times: StageTimes = field(default_factory=StageTimes)

    def __post_init__(self) -> None:
        mdir = Path(self.settings.models) if self.settings.models else models_dir()
        s = self.settings
        # the tracker searches a small rescaled crop around the last face (few pyramid levels);
        # it, the coarse pass and a full scan whose pyramid is cut short (min_face above 80 or
        # a max_face: the app's settings) may run the int8 detector, as their tilings already
        # differ from dlib's; a full scan of dlib's whole pyramid runs the fp32 one, dlib's
        # exact boxes
        fast_det = model_path(mdir, "detector", s.precision)
        self.detector = self._scan_detector(mdir / "detector.onnx")
        if not self.detector.dlib_exact:
            self.detector = self._scan_detector(fast_det)
        self.tracker = FaceDetector(
            fast_det, min_face=80, max_face=TRACK_MAX_FACE, threads=s.threads
        )
        self.coarse = FaceDetector(
            fast_det, downscale=COARSE_DOWNSCALE, max_face=s.max_face, threads=s.threads,
        )
        self.fallback = FallbackCascade(self.detector, threads=s.threads)
        #: the fallback passes the last :meth:`detect` ran (empty when the search found a face)
        self.fallback_passes: tuple[str, ...] = ()
        self.landmarker = LandmarkPredictor(mdir / "landmarks5.npz")
        self.encoder = FaceEncoder(encoder_path(mdir, s.precision), threads=s.threads)
        self._last: list[Detection] = []
        self._last_shape: tuple[int, ...] = ()
        self._since_full = 0
        self.last_was_tracked = False
        #: how the last frame was searched: tracked, coarse, coarse+full (coarse found
        #: nothing) or full (then the fallback passes when nothing was found: see
        #: ``fallback_passes``)
        self.last_search = ""
        self._last_face_px: float | None = None
        self._misses = 0
        #: streams: the thumbnail of the frame on which the fallback passes last ran and found
        #: nothing (None: they have not run since the last face or the stream's start)
        self._fruitless: np.ndarray | None = None
        #: whether the last detect() skipped the passes because the scene had not changed
        self.fallback_skipped_static = False

    def _scan_detector(self, path: Path) -> FaceDetector:
        """The full scan's detector (the settings' face sizes and scaling) on model ``path``."""
        s = self.settings
        return FaceDetector(path, min_face=s.min_face, max_face=s.max_face,
                            downscale=s.downscale, upsample=s.upsample, threads=s.threads)

    def reset_tracking(self) -> None:
        """Forget the last faces (start of a new stream)."""
        self._last = []
        self._since_full = 0
        self._misses = 0
        self._fruitless = None

    @property
    def threshold(self) -> float:
        """The encoder's default same-person threshold (Euclidean)."""
        return float(self.encoder.threshold)

    def detect(self, image: np.ndarray, track: bool = False) -> list[Detection]:
        """Faces in ``image``. With ``track``, frames of one stream are searched only around
        the faces of the previous frame (a rescaled crop), falling back to the whole frame
        when that finds nothing, when the frame size changes, and every
        ``full_scan_every`` frames, so a face entering elsewhere is seen within that many."""
        t0 = time.perf_counter()
        dets: list[Detection] = []
        self.last_was_tracked = False
        self.last_search = "full"
        if (track and self._last and image.shape == self._last_shape
                and self._since_full < self.settings.full_scan_every):
            dets = self._detect_near_last(image)
            self.last_was_tracked = bool(dets)
        if self.last_was_tracked:
            self._since_full += 1
            self.last_search = "tracked"
        else:
            dets = []
            if self._coarse_useful():
                dets = self._search_near(image, self.coarse.detect(image))
                self.last_search = "coarse" if dets else "coarse+full"
            if not dets:
                dets = self.detector.detect(image)
            self._since_full = 0
        self.fallback_passes = ()
        self.fallback_skipped_static = False
        self._misses = 0 if dets else self._misses + 1
        if dets or (track and image.shape != self._last_shape):
            self._fruitless = None
        # in a stream, frames with no face run the passes on the first miss and then every
        # FALLBACK_EVERY_TRACKED misses, and only when the frame has changed since the passes
        # last ran and found nothing (they are deterministic: on the same scene they would find
        # nothing again): a camera with nobody in front keeps its frame rate
        if not dets and self.settings.fallback and (
                not track or (self._misses - 1) % FALLBACK_EVERY_TRACKED == 0):
            thumb = scene_thumbnail(as_rgb_u8(image)) if track else None
            if thumb is not None and self._fruitless is not None and not scene_changed(
                    thumb, self._fruitless):
                self.fallback_skipped_static = True
            else:
                dets = self.fallback.detect(image)
                self.fallback_passes = self.fallback.last_passes
                if dets:
                    self._misses = 0
                self._fruitless = None if dets else thumb
        if dets:  # remembered across streams: decides whether the next first frame goes coarse
            self._last_face_px = max(max(d.width, d.height) for d in dets)
        if track:
            self._last, self._last_shape = dets, image.shape
        self.times.detect = (time.perf_counter() - t0) * 1e3
        return dets

    def _coarse_useful(self) -> bool:
        s = self.settings
        # worth it when the configured faces reach well above the coarse pass's smallest, and
        # unless the last face this pipeline saw was small (a user sitting back: the coarse
        # pass would find nothing and cost ~14 ms before the full scan)
        return s.coarse_first and s.upsample == 0 and (
            s.max_face is None or s.max_face >= 1.5 * COARSE_FACE_PX) and (
            self._last_face_px is None or self._last_face_px >= 0.9 * COARSE_FACE_PX)

    def _detect_near_last(self, image: np.ndarray) -> list[Detection]:
        return self._search_near(image, self._last)

    def _search_near(self, image: np.ndarray, near: Sequence[Detection]) -> list[Detection]:
        """Faces re-detected in a rescaled crop around each of ``near`` (the last frame's
        faces, or coarse finds): the crop is scaled so the face is TRACK_FACE_PX."""
        h, w = image.shape[:2]
        out: list[Detection] = []
        for last in near:
            size = max(last.box[2] - last.box[0], last.box[3] - last.box[1], 1.0)
            m = size * TRACK_MARGIN
            x0, y0 = max(0, int(last.box[0] - m)), max(0, int(last.box[1] - m))
            x1, y1 = min(w, int(last.box[2] + m) + 1), min(h, int(last.box[3] + m) + 1)
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            scale = TRACK_FACE_PX / size
            crop = image[y0:y1, x0:x1]
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            small = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=interp)
            sy = (y1 - y0) / small.shape[0]
            sx = (x1 - x0) / small.shape[1]
            for d in self.tracker.detect(small):
                b = (d.box[0] * sx + x0, d.box[1] * sy + y0, d.box[2] * sx + x0,
                     d.box[3] * sy + y0)
                if not any(_iou(b, o.box) > 0.5 for o in out):
                    out.append(Detection(b, d.score))
        return sorted(out, key=lambda d: -d.score)

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
        DevTrain (see docs/accuracy.md).
        """
        chips = zoom_chips(chips, self.settings.zoom)
        if not self.settings.flip_average:
            return self.encoder.embed(chips)
        n = chips.shape[0]
        both = self.encoder.embed(np.concatenate([chips, chips[:, :, ::-1, :]], axis=0))
        return ((both[:n] + both[n:]) / 2.0).astype(np.float32)

    def observe(
        self, image: np.ndarray, select: Select = "all", fallback_center: bool = False,
        track: bool = False,
    ) -> list[FaceObservation]:
        """Detect and describe faces.

        select: ``all`` (score order), ``largest`` (a camera in front of the user) or
        ``center`` (LFW). With ``fallback_center`` an image with no detection is described
        from a central box (observation marked ``fallback``). ``track``: consecutive frames
        of one stream (see :meth:`detect`).
        """
        image = as_rgb_u8(image)
        dets = select_detections(self.detect(image, track), image.shape, select)
        if not dets:
            if fallback_center:
                return self.observe_boxes(image, [center_box(image.shape)], fallback=True)
            self.times.landmarks = self.times.align = self.times.embed = 0.0
            return []
        return self.observe_boxes(image, [d.box for d in dets], [d.score for d in dets])


class FacePipeline(Protocol):
    """What the front ends, the services and the evaluation use of a pipeline: the type of
    every ``pipe`` argument outside this module (:class:`Pipeline` is the implementation).

    observe: image (H, W, 3) uint8 RGB or (H, W) grey -> faces, see :meth:`Pipeline.observe`.
    """

    @property
    def settings(self) -> PipelineSettings: ...

    @property
    def times(self) -> StageTimes: ...

    @property
    def encoder(self) -> FaceEncoder: ...

    @property
    def threshold(self) -> float: ...

    def reset_tracking(self) -> None: ...

    def detect(self, image: np.ndarray, track: bool = False) -> list[Detection]: ...

    def observe(
        self, image: np.ndarray, select: Select = "all", fallback_center: bool = False,
        track: bool = False,
    ) -> list[FaceObservation]: ...


@functools.lru_cache(maxsize=4)
def get_pipeline(settings: PipelineSettings = PipelineSettings()) -> Pipeline:
    """The per-process pipeline for ``settings`` (models load on first use, once)."""
    return Pipeline(settings)


def euclidean(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))

"""Passive liveness: is the face that matched a live face, or a photo or a screen?

Layers (each measured on its own, see docs/liveness.md)
    * **Passive model**: MiniFASNet V2 (crop 2.7x the face box) and V1SE (4.0x), converted by
      :mod:`faceunlock.training.convert_minifasnet`. The live score of a crop is the mean of
      the two models' real-class probabilities; an attempt's score is the mean over its
      judged frames. It runs only when an attempt is about to accept, on the matched frames
      of the decision window (at most ``max_judged``), so the stream of frames that do not
      match, or do not yet decide, pays nothing.
    * **Deny cues**, on the same frames, each enough to refuse: a device-shaped rectangle (a
      phone or tablet bezel) closed around the face, a large flat specular highlight (glass
      glare) on or beside the face, a frozen face (the judged face crops identical to the
      last grey level: a camera never delivers the same pixels twice, an injected still
      does), planar motion (the face and its surroundings moved as one homography between
      the judged frames: a hand-held photo or print; tracks are forward-backward checked so
      that a lost track is not taken for parallax) and, on infrared frames only, a face too
      dark or too smooth to be skin lit by the camera's emitter (a screen in near-IR).
    * **Infrared frames** skip the model: it was trained on colour crops and scores grey
      live faces as attacks; the physical cues decide there.

Everything is judged on the face that matched (its detector box from the same observation),
never on another face of the frame: a photo cannot supply the match while a live person
beside it supplies the liveness.

This module uses onnxruntime, OpenCV and numpy only.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceunlock.engine.imageio import as_rgb_u8
from faceunlock.engine.ortsession import LazyOnnxModel
from faceunlock.errors import InputError, ModelError
from faceunlock.paths import models_dir

Box = tuple[float, float, float, float]

LEVELS = ("off", "passive", "active")
SIZE = 80
V2_FILE = "minifasnet-v2.onnx"
V1SE_FILE = "minifasnet-v1se.onnx"
#: the operating point used when the sidecar has none (see :func:`operating_point`)
DEFAULT_THRESHOLD = 0.5
REAL_CLASS = 1
#: what the user is told when a presentation is judged an attack
ATTACK_MESSAGE = "Face not accepted: this looks like a photo or a screen. Type your password."
#: ... and when only the model's score refused it on a dark face (reason ``dim``): in a dim
#: room a webcam's high gain adds noise that MiniFASNet reads as a recaptured picture (the
#: synthetic dim room of benchmarks/liveness_conditions.py: 27-100 % of live windows
#: refused), so the user is told what to change
DIM_MESSAGE = ("Face not accepted: too dark to tell your face from a photo. Turn on a light, "
               "or type your password.")
#: a face whose box's median grey level is below this is dark for DIM_MESSAGE: the clips'
#: faces as captured have 109-164, the same faces in the synthetic dim room 54-77 (and
#: backlit 51-74, which the model still accepts)
DIM_FACE_LEVEL = 90.0
#: the engine's (MMOD) face box grown by this much in width and height, about its centre,
#: before MiniFASNet's 2.7x / 4.0x crop: MMOD boxes run brow to upper lip, the RetinaFace
#: boxes the models were trained on forehead to chin. Measured on the kit's live frames, the
#: 5th percentile of the live score rose from 0.16 (box as is) to 0.51; screen attacks' 95th
#: percentile fell from 0.53 to 0.45
BOX_GROW = (1.4, 1.54)
#: onnxruntime intra-op threads of each MiniFASNet session unless the caller says otherwise:
#: the 80x80 models gain almost nothing from a second thread (two crops of both models:
#: 10.9 ms wall and CPU with one thread, 10.4 ms wall but 14.4 ms CPU with two, on the 2-core
#: development machine), and the deny cues use the other core meanwhile (:meth:`Liveness.judge`)
PAD_THREADS = 1


def crop_box(shape: Sequence[int], box: Box, scale: float) -> tuple[int, int, int, int]:
    """The crop (x0, y0, x1, y1), end-exclusive, of ``box`` (left, top, right, bottom,
    inclusive) scaled by ``scale`` about its centre: the factor is first clipped so the crop
    fits the image, then the crop is shifted back inside it (MiniFASNet's input rule)."""
    h, w = int(shape[0]), int(shape[1])
    bw = max(box[2] - box[0] + 1.0, 1.0)
    bh = max(box[3] - box[1] + 1.0, 1.0)
    s = min(scale, (h - 1) / bh, (w - 1) / bw)
    cw, ch = bw * s, bh * s
    cx, cy = box[0] + bw / 2.0, box[1] + bh / 2.0
    x0, y0 = cx - cw / 2.0, cy - ch / 2.0
    x0 = min(max(x0, 0.0), w - cw)
    y0 = min(max(y0, 0.0), h - ch)
    ix0, iy0 = round(x0), round(y0)
    ix1, iy1 = min(w, round(x0 + cw)), min(h, round(y0 + ch))
    return ix0, iy0, max(ix1, ix0 + 1), max(iy1, iy0 + 1)


def grow_box(box: Box, grow: tuple[float, float] = BOX_GROW) -> Box:
    """``box`` scaled about its centre by ``grow`` (width, height factors)."""
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    hw, hh = (box[2] - box[0]) * grow[0] / 2.0, (box[3] - box[1]) * grow[1] / 2.0
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def crop_input(image: np.ndarray, box: Box, scale: float, grow: bool = True) -> np.ndarray:
    """The (3, 80, 80) float32 BGR 0-255 model input for the engine's face ``box`` (grown by
    BOX_GROW unless ``grow`` is false) of an RGB uint8 image."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"liveness: expected an RGB uint8 image, got {image.dtype} "
                         f"{image.shape}")
    x0, y0, x1, y1 = crop_box(image.shape, grow_box(box) if grow else box, scale)
    patch = cv2.resize(image[y0:y1, x0:x1], (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(patch[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32)


class PadModel(LazyOnnxModel):
    """One MiniFASNet model: crops in, real-class probability out."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__(path, threads or PAD_THREADS)
        self.scale = 0.0

    def _accept(self, inp: Any, out: Any, meta: dict[str, Any]) -> None:
        if inp.type != "tensor(float)" or list(inp.shape[1:]) != [3, SIZE, SIZE]:
            raise ModelError(self.path, f"input {inp.name!r} is {inp.type} {inp.shape}, "
                             f"expected float [N, 3, {SIZE}, {SIZE}]")
        if out.type != "tensor(float)" or list(out.shape[1:]) != [3]:
            raise ModelError(self.path, f"output {out.name!r} is {out.type} {out.shape}, "
                             "expected float [N, 3]")
        try:
            scale = float(meta["input"]["crop"]["scale"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(self.path, "sidecar lacks input.crop.scale") from None
        if not 1.0 <= scale <= 8.0:
            raise ModelError(self.path, f"sidecar crop scale {scale} is out of range")
        self.scale = scale

    def real(self, faces: Sequence[tuple[np.ndarray, Box]]) -> np.ndarray:
        """Real-class probability of each (RGB uint8 image, face box), (N,) float32, in one
        batched run."""
        self.load()
        assert self._session is not None
        x = np.stack([crop_input(im, b, self.scale) for im, b in faces])
        (p,) = self._session.run(None, {self._input_name: x})
        return np.asarray(p[:, REAL_CLASS], np.float32)


# --------------------------------------------------------------------------------------------
# Deny cues
# --------------------------------------------------------------------------------------------

#: glare: a pixel is specular when its value is >= this and its saturation low
GLARE_VALUE = 245
GLARE_MAX_SAT = 40
#: glare: one blob this large (as a share of the face box area) inside the 2x face region
GLARE_MIN_AREA = 0.12
#: glare: ... and this flat (std of grey inside the blob)
GLARE_MAX_STD = 4.0
#: bezel: a convex quadrilateral around the face with this area range (face box areas)
BEZEL_MIN_AREA = 2.0
BEZEL_MAX_AREA = 30.0
#: bezel: the quadrilateral's border must be this much darker or brighter than the inside
#: band next to it (grey levels)
BEZEL_MIN_CONTRAST = 18.0
#: frozen: judged face crops whose mean absolute difference is below this (grey levels)
FROZEN_MAX_DIFF = 0.25
#: planar motion: the region around the face moved at least this much (75th percentile of
#: the tracked points' displacement, pixels) ...
PLANAR_MIN_MOTION = 1.0
#: ... and one homography explains it to this (90th percentile of the residuals, pixels) ...
PLANAR_MAX_RESIDUAL = 1.0
#: ... and to this share of the motion (parallax grows with the motion; tracking noise not)
PLANAR_MAX_RELATIVE = 0.3
PLANAR_MIN_POINTS = 12
#: RANSAC draws for the homography. Planar needs 90 % of the tracks within the residual limit
#: (at most RANSAC's 1 px), and with 90 % inliers a draw of 4 is all inliers with
#: probability 0.66: 100 draws all miss with probability 0.34^100, so more draws change no
#: planar verdict. OpenCV's default of 2000 is what a live face paid: its tracks are not
#: one plane, so RANSAC never stops early (up to 5 ms of the cue per pass)
PLANAR_RANSAC_ITERS = 100
#: the pixel constants of the planar cue (motion, residual, tracking window, forward-backward
#: check, the light-flattening blurs) were set on faces 57-90 px wide; the region of a wider
#: face (a camera with more pixels, a user nearer to it) is first scaled down so that its face
#: box is this wide, so that they keep their meaning in face widths
PLANAR_FACE_WIDTH = 96.0
#: tracking: Lucas-Kanade window and pyramid levels (3 levels follow a hand's jolt of ~30 px
#: between frames), and the forward-backward check that drops lost tracks (pixels)
PLANAR_WINDOW = 15
PLANAR_LEVELS = 3
PLANAR_MAX_FB = 0.5
#: the region is also tracked with the light divided out (:func:`light_flattened`): blurred
#: with sigma PLANAR_PREBLUR px (sensor noise), then divided by its own blur with sigma
#: PLANAR_LIGHT_SIGMA px (the local brightness); planar on either is planar. A lamp on one
#: side lights a picture unevenly, and as the picture moves under it each patch changes
#: brightness, which Lucas-Kanade (brightness constancy) takes for motion: on raw grey levels
#: most of the kit's prints and moving photos under a side light left a homography residual
#: of 1.4-18 px and passed as not planar (benchmarks/liveness_conditions.py)
PLANAR_PREBLUR = 1.5
PLANAR_LIGHT_SIGMA = 6.0
#: ... but dividing the light out also hides the shading changes of a head that turns (3-D
#: evidence the raw grey levels keep), so the flattened pass must find the motion twice as
#: planar: its residual within this share of the motion (the raw pass: PLANAR_MAX_RELATIVE).
#: At 0.3 it refused 10 of the held-out live windows (a head translating ~3.5 px, residual
#: 0.77-0.98 px: 0.22-0.25 of the motion); the prints and moving photos it catches under a
#: side light have residuals of 0.02-0.23 of their motion (all but one below 0.12)
PLANAR_FLAT_MAX_RELATIVE = 0.15
#: infrared: a face lit by the camera's own near-IR emitter shows skin texture; a phone or
#: monitor screen shows next to nothing in near-IR. Refused: a face box whose median grey
#: level is below IR_MIN_LEVEL, or whose structure (standard deviation of the grey crop
#: blurred with sigma 2 px, which sensor noise amplified by CLAHE does not reach) is below
#: IR_MIN_DETAIL grey levels. The clips' faces as IR frames (grey + CLAHE): 25.5 or more;
#: a flat dark rectangle with noise, through the same CLAHE: about 1
IR_MIN_LEVEL = 20.0
IR_MIN_DETAIL = 6.0


def _region(shape: Sequence[int], box: Box, scale: float) -> tuple[int, int, int, int]:
    h, w = int(shape[0]), int(shape[1])
    bw, bh = box[2] - box[0] + 1, box[3] - box[1] + 1
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = max(0, int(cx - bw * scale / 2)), max(0, int(cy - bh * scale / 2))
    x1, y1 = min(w, int(cx + bw * scale / 2) + 1), min(h, int(cy + bh * scale / 2) + 1)
    return x0, y0, x1, y1


def glare(image: np.ndarray, box: Box) -> bool:
    """A large, flat, near-white highlight touching the face region (glass glare): skin
    highlights are small and textured, a reflection on a screen or a glossy print is a big
    saturated patch. A patch that runs on to the frame's edge is not one: a reflection lies
    on the presented picture, which the camera sees whole around the face, while an
    over-exposed wall or window behind the user fills the frame out to its border (on the
    kit's live windows with a brighter camera response, 4 of 148 refused for such a wall)."""
    x0, y0, x1, y1 = _region(image.shape, box, 2.0)
    roi = image[y0:y1, x0:x1]
    if roi.size == 0:
        return False
    mask = _specular(roi)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    face_area = max((box[2] - box[0] + 1) * (box[3] - box[1] + 1), 1.0)
    grey = cv2.cvtColor(roi, cv2.COLOR_RGB2GRAY)
    whole: np.ndarray | None = None
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] >= GLARE_MIN_AREA * face_area:
            vals = grey[labels == i]
            if float(vals.std()) > GLARE_MAX_STD:
                continue
            if whole is None:
                whole = _border_specular(image)
            if not np.any(whole[y0:y1, x0:x1][labels == i]):
                return True
    return False


def _specular(rgb: np.ndarray) -> np.ndarray:
    """uint8 mask (1: near white, value >= GLARE_VALUE and saturation <= GLARE_MAX_SAT)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    return ((hsv[:, :, 2] >= GLARE_VALUE) & (hsv[:, :, 1] <= GLARE_MAX_SAT)).astype(np.uint8)


def _border_specular(image: np.ndarray) -> np.ndarray:
    """Bool mask of the near-white pixels of ``image`` connected to the frame's border."""
    mask = _specular(image)
    _, labels = cv2.connectedComponents(mask, connectivity=8)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    edge = edge[edge > 0]
    return np.isin(labels, edge) if edge.size else np.zeros(mask.shape, bool)


def bezel(image: np.ndarray, box: Box) -> bool:
    """A device-shaped rectangle (a phone or tablet screen's edge) closed around the face:
    a convex quadrilateral that contains the whole face box, 2-30 face areas large, inside
    the frame (not its border), whose edge is a clear step in brightness."""
    x0, y0, x1, y1 = _region(image.shape, box, 7.0)
    roi = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    if roi.size == 0:
        return False
    edges = cv2.Canny(cv2.GaussianBlur(roi, (3, 3), 0), 40, 120)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    fx0, fy0, fx1, fy1 = box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0
    face_area = max((fx1 - fx0 + 1) * (fy1 - fy0 + 1), 1.0)
    corners = np.array([[fx0, fy0], [fx1, fy0], [fx1, fy1], [fx0, fy1]], np.float32)
    h, w = image.shape[:2]
    for c in contours:
        area = cv2.contourArea(c)
        if not BEZEL_MIN_AREA * face_area <= area <= BEZEL_MAX_AREA * face_area:
            continue
        quad = cv2.approxPolyDP(c, 0.04 * cv2.arcLength(c, True), True)
        if len(quad) != 4 or not cv2.isContourConvex(quad):
            continue
        if any(cv2.pointPolygonTest(quad, (float(x), float(y)), False) <= 0 for x, y in corners):
            continue
        q = quad.reshape(4, 2) + np.array([x0, y0])
        if q[:, 0].min() <= 2 or q[:, 1].min() <= 2 or q[:, 0].max() >= w - 3 \
                or q[:, 1].max() >= h - 3:
            continue  # the frame's own border
        if _edge_contrast(roi, quad.reshape(4, 2)) >= BEZEL_MIN_CONTRAST:
            return True
    return False


def _edge_contrast(grey: np.ndarray, quad: np.ndarray) -> float:
    """Mean |outside band - inside band| brightness along a quadrilateral's edge."""
    mask = np.zeros(grey.shape, np.uint8)
    cv2.fillConvexPoly(mask, quad.astype(np.int32), 1)
    k = np.ones((7, 7), np.uint8)
    inner = (mask > 0) & (cv2.erode(mask, k) == 0)
    outer = (cv2.dilate(mask, k) > 0) & (mask == 0)
    if not inner.any() or not outer.any():
        return 0.0
    return abs(float(grey[outer].mean()) - float(grey[inner].mean()))


def frozen(crops: Sequence[np.ndarray]) -> bool:
    """Whether the judged face crops are the same picture (mean |difference| below
    FROZEN_MAX_DIFF grey levels between every pair of consecutive crops)."""
    if len(crops) < 2:
        return False
    return all(float(np.mean(np.abs(a - b))) < FROZEN_MAX_DIFF
               for a, b in itertools.pairwise(crops))


def ir_flat(image: np.ndarray, box: Box) -> bool:
    """On an infrared frame: the face box is too dark or too smooth to be skin lit by the
    camera's emitter (a screen in near-IR: a dark, featureless rectangle). ``image`` RGB or
    grey uint8."""
    crop = _face_grey(image, box)
    if crop.size < 16:
        return True
    detail = float(cv2.GaussianBlur(crop.astype(np.float32), (0, 0), 2.0).std())
    return float(np.median(crop)) < IR_MIN_LEVEL or detail < IR_MIN_DETAIL


def _face_grey(image: np.ndarray, box: Box) -> np.ndarray:
    """The face box's grey pixels (RGB or grey uint8 image)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    x0, y0, x1, y1 = _region(grey.shape, box, 1.0)
    return grey[y0:y1, x0:x1]


def face_level(image: np.ndarray, box: Box) -> float:
    """The median grey level of the face box (RGB or grey uint8 image)."""
    crop = _face_grey(image, box)
    return float(np.median(crop)) if crop.size else 0.0


def track(ga: np.ndarray, gb: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points ``pts`` (N, 1, 2) float32 of grey image ``ga`` tracked into ``gb`` (pyramidal
    Lucas-Kanade, PLANAR_LEVELS levels), kept only where tracking back from ``gb`` lands
    within PLANAR_MAX_FB pixels of the start: (p0, p1), each (M, 2) float32. A lost track is
    not parallax: without this check, the few points a large or blurred motion throws off
    look like a surface that is not flat."""
    win = (PLANAR_WINDOW, PLANAR_WINDOW)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
    nxt, st, _ = cv2.calcOpticalFlowPyrLK(ga, gb, pts, None, winSize=win,
                                          maxLevel=PLANAR_LEVELS, criteria=crit)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(gb, ga, nxt, None, winSize=win,
                                            maxLevel=PLANAR_LEVELS, criteria=crit)
    fb = np.linalg.norm((back - pts).reshape(-1, 2), axis=1)
    ok = (st.ravel() == 1) & (st2.ravel() == 1) & (fb < PLANAR_MAX_FB)
    return pts[ok].reshape(-1, 2), nxt[ok].reshape(-1, 2)


def light_flattened(grey: np.ndarray) -> np.ndarray:
    """``grey`` (H, W) uint8 with smooth illumination divided out (see PLANAR_LIGHT_SIGMA):
    uint8, 128 where a pixel equals its neighbourhood's mean."""
    x: np.ndarray = grey.astype(np.float32)
    if PLANAR_PREBLUR > 0:
        x = cv2.GaussianBlur(x, (0, 0), PLANAR_PREBLUR)
    if PLANAR_LIGHT_SIGMA <= 0:
        return np.clip(x, 0, 255).astype(np.uint8)
    mean = cv2.GaussianBlur(x, (0, 0), PLANAR_LIGHT_SIGMA)
    return np.clip(128.0 * x / (mean + 4.0), 0, 255).astype(np.uint8)


def planar_motion(a: np.ndarray, b: np.ndarray, box: Box) -> bool:
    """Whether the face and its surroundings moved as one flat picture between frames ``a``
    and ``b`` (RGB): points tracked (:func:`track`, forward-backward checked) in the region
    2.5x the face box of ``a`` moved by at least PLANAR_MIN_MOTION, and one homography
    (RANSAC) explains 90 % of them within PLANAR_MAX_RESIDUAL and within
    PLANAR_MAX_RELATIVE of the motion on the region's grey levels, or within
    PLANAR_FLAT_MAX_RELATIVE with the light divided out (:func:`light_flattened`: a picture
    moving under a one-sided light). A head
    moves against its background, and turns (parallax between nose, cheeks and hair); a
    hand-held photo or print moves as one plane. Abstains (False) when there is too little
    texture or motion to tell."""
    x0, y0, x1, y1 = _region(a.shape, box, 2.5)
    ga = cv2.cvtColor(a[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(b[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    if ga.shape != gb.shape or min(ga.shape) < 16:
        return False
    width = box[2] - box[0] + 1.0
    if PLANAR_FACE_WIDTH and width > PLANAR_FACE_WIDTH:
        f = PLANAR_FACE_WIDTH / width
        size = (max(16, round(ga.shape[1] * f)), max(16, round(ga.shape[0] * f)))
        ga = cv2.resize(ga, size, interpolation=cv2.INTER_AREA)
        gb = cv2.resize(gb, size, interpolation=cv2.INTER_AREA)
    return _planar(ga, gb, PLANAR_MAX_RELATIVE) or \
        _planar(light_flattened(ga), light_flattened(gb), PLANAR_FLAT_MAX_RELATIVE)


def _planar(ga: np.ndarray, gb: np.ndarray, max_relative: float) -> bool:
    """The planar test of :func:`planar_motion` on two grey uint8 regions, the residual
    within ``max_relative`` of the motion."""
    pts = cv2.goodFeaturesToTrack(ga, 100, 0.01, 3)
    if pts is None or len(pts) < PLANAR_MIN_POINTS:
        return False
    p0, p1 = track(ga, gb, pts)
    if len(p0) < PLANAR_MIN_POINTS:
        return False
    motion = float(np.percentile(np.linalg.norm(p1 - p0, axis=1), 75))
    if motion < PLANAR_MIN_MOTION:
        return False
    hm, _ = cv2.findHomography(p0, p1, cv2.RANSAC, PLANAR_MAX_RESIDUAL,
                               maxIters=PLANAR_RANSAC_ITERS)
    if hm is None:
        return False
    pred = cv2.perspectiveTransform(p0[None].astype(np.float64), hm)[0]
    resid = np.linalg.norm(pred - p1, axis=1)
    return float(np.percentile(resid, 90)) <= min(PLANAR_MAX_RESIDUAL, max_relative * motion)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LivenessParams:
    """level: ``off``, ``passive`` or ``active`` (the passive checks, then the head-turn or
    blink challenge of :mod:`faceunlock.engine.challenge`, run by
    :func:`faceunlock.engine.auth.authenticate`); threshold: the attempt's mean live score
    must reach it; max_judged: the heavy model runs on at most this many matched frames of an
    attempt; challenge_seconds: the challenge's window after its prompt; challenges: the
    kinds the challenge is drawn among (``liveness.challenges``: ``turn``, ``blink`` or
    both, comma-separated)."""

    level: str = "passive"
    threshold: float | None = None
    max_judged: int = 2
    cues: bool = True
    challenge_seconds: float = 4.0
    challenges: str = "turn,blink"

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise InputError(f"liveness level must be one of {', '.join(LEVELS)}, "
                             f"got {self.level!r}")
        if self.max_judged < 1:
            raise InputError(f"liveness: max_judged must be >= 1, got {self.max_judged}")
        if not self.challenge_seconds > 0:
            raise InputError("liveness: challenge_seconds must be positive, got "
                             f"{self.challenge_seconds}")

    @property
    def enabled(self) -> bool:
        return self.level != "off"


@dataclass
class Verdict:
    """live: the attempt passed; score: mean live score of the judged frames (nan when the
    model did not run); reasons: the deny cues that fired and/or ``score``; ms: time spent."""

    live: bool
    score: float
    threshold: float
    judged: int
    reasons: list[str] = field(default_factory=list)
    ms: float = 0.0

    @property
    def message(self) -> str:
        """What the user is told when the attempt was refused."""
        return DIM_MESSAGE if "dim" in self.reasons else ATTACK_MESSAGE

    def to_json(self) -> dict[str, Any]:
        return {
            "live": self.live,
            "score": None if not np.isfinite(self.score) else round(self.score, 4),
            "threshold": round(self.threshold, 4),
            "judged": self.judged,
            "reasons": list(self.reasons),
            "ms": round(self.ms, 2),
        }


class Liveness:
    """The passive liveness stage: the two MiniFASNet models (loaded lazily, once) and the
    deny cues. Thread-compatible: sessions are re-entrant."""

    def __init__(self, models: Path | None = None, params: LivenessParams = LivenessParams(),
                 threads: int | None = None) -> None:
        mdir = models if models is not None else models_dir()
        self.params = params
        self.v2 = PadModel(mdir / V2_FILE, threads)
        self.v1se = PadModel(mdir / V1SE_FILE, threads)

    @property
    def threshold(self) -> float:
        """The operating point: the params' when set, else the sidecar's."""
        if self.params.threshold is not None:
            return float(self.params.threshold)
        return operating_point(self.v2.meta)

    def scores(self, faces: Sequence[tuple[np.ndarray, Box]]) -> np.ndarray:
        """Live score of each (image, box): the mean real-class probability of V2 and V1SE,
        (N,) float32."""
        if not faces:
            return np.zeros(0, np.float32)
        return (self.v2.real(faces) + self.v1se.real(faces)) / 2.0

    def judge(self, faces: Sequence[tuple[np.ndarray, Box]], infrared: bool = False
              ) -> Verdict:
        """The verdict on one attempt's chosen frames: (RGB image, box of the matched face)
        each, oldest first; the last ``max_judged`` are judged. ``infrared``: the frames came
        from an infrared sensor (:attr:`Frame.ir_sensor`): the face must show skin structure in
        near-IR (:func:`ir_flat`, reason ``ir-flat``), and the model does not run
        (``score`` nan): MiniFASNet was trained on colour crops and scores every grey live
        face of the clips as an attack (median 0.02), so on IR the physical cues decide."""
        import time

        t0 = time.perf_counter()
        faces = [(as_rgb_u8(im), b) for im, b in list(faces)[-self.params.max_judged:]]
        thr = self.threshold
        if not faces:
            return Verdict(False, float("nan"), thr, 0, ["no face"])
        # the deny cues (OpenCV) run on a second thread while the models (onnxruntime, one
        # intra-op thread each) score the crops: both release the GIL, so the judge takes
        # about the longer of the two instead of their sum (docs/liveness.md, "Current
        # measurements")
        cues = _Background(lambda: deny_cues(faces, infrared)) if self.params.cues else None
        try:
            score = float("nan") if infrared else float(np.mean(self.scores(faces)))
        finally:
            reasons = cues.result() if cues is not None else []
        if not infrared and score < thr:
            reasons.append("score")
            im, b = faces[-1]
            if reasons == ["score"] and face_level(im, b) < DIM_FACE_LEVEL:
                reasons.append("dim")  # not a cue: why the score may be wrong (DIM_MESSAGE)
        ms = (time.perf_counter() - t0) * 1e3
        return Verdict(not reasons, score, thr, len(faces), reasons, ms)


def deny_cues(faces: Sequence[tuple[np.ndarray, Box]], infrared: bool = False) -> list[str]:
    """The deny cues that fire on one attempt's judged frames ((RGB uint8 image, box of the
    matched face), oldest first), in this order: ``ir-flat`` (infrared frames only),
    ``glare``, ``bezel``, then ``frozen`` or else ``planar``."""
    reasons: list[str] = []
    if infrared and any(ir_flat(im, b) for im, b in faces):
        reasons.append("ir-flat")
    if any(glare(im, b) for im, b in faces):
        reasons.append("glare")
    if any(bezel(im, b) for im, b in faces):
        reasons.append("bezel")
    # the same pixels of every frame: the first face's box (boxes jitter by a pixel)
    first = faces[0][1]
    grey = [cv2.cvtColor(crop_input(im, first, 1.0).transpose(1, 2, 0).astype(np.uint8),
                         cv2.COLOR_BGR2GRAY).astype(np.float32) for im, _ in faces]
    if frozen(grey):
        reasons.append("frozen")
    elif len(faces) >= 2 and planar_motion(faces[0][0], faces[-1][0], faces[0][1]):
        reasons.append("planar")
    return reasons


class _Background:
    """``fn()`` on a new thread (one per call: nothing survives a fork); :meth:`result`
    waits for it and returns its value or raises its exception. Where no thread can be
    started (a process or thread limit), ``fn`` runs at once, on the caller's thread."""

    def __init__(self, fn: Callable[[], list[str]]) -> None:
        self._fn = fn
        self._value: list[str] = []
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="faceunlock-liveness-cues", daemon=True)
        try:
            self._thread.start()
        except RuntimeError:  # "can't start new thread"
            self._thread = None
            self._run()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as e:  # handed to the caller by result()
            self._error = e

    def result(self) -> list[str]:
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def operating_point(meta: dict[str, Any]) -> float:
    """The threshold in the V2 sidecar's ``operating_point`` (fitted by
    ``tools/attack_kit.py fit``), or DEFAULT_THRESHOLD."""
    op = meta.get("operating_point")
    if isinstance(op, dict) and isinstance(op.get("threshold"), int | float):
        return float(op["threshold"])
    return DEFAULT_THRESHOLD


_SHARED: dict[tuple[str, LivenessParams], Liveness] = {}
_SHARED_LOCK = threading.Lock()


def get_liveness(models: Path | None, params: LivenessParams) -> Liveness:
    """The per-process stage for ``models`` and ``params`` (its models load once)."""
    key = (str(models or models_dir()), params)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Liveness(models, params)
        return _SHARED[key]

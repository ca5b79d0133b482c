"""MediaPipe's face mesh (468 3-D points) and iris models on the engine's tracked faces, and
the geometric cues built on them: eye aspect ratio and blinks, yaw, and planar parallax.

Models (converted once by :mod:`faceunlock.training.convert_mediapipe`, Apache-2.0):
``models/face-mesh.onnx`` takes a 192x192 RGB crop in [0, 1] and gives 468 points (x, y, z)
in crop pixels plus a face-presence probability; ``models/iris.onnx`` takes a 64x64 eye crop
and gives 71 eye-contour/brow points and 5 iris points. Both load lazily, once, checked
against their sidecar's sha256 (a corrupt or replaced file raises ModelError naming it).

Crops. A :class:`Roi` is a rotated square in the frame (centre, side, angle). For the mesh it
comes from the engine's 5-point landmarks (:func:`roi_from_landmarks5`: eyes levelled, centre
and side in units of the eye distance, fitted to MediaPipe's own rect from landmarks on
tests/data/faces), from the face box alone (:func:`roi_from_box`, no rotation), or from a
previous mesh (:func:`roi_from_mesh`, MediaPipe's rule: landmarks 33 and 263 level, 1.5x the
landmarks' extent, square). The iris crop of an eye is 2.3x its corner distance; the
subject's left eye (the image's right) is mirrored before the model and back after.

Coordinates are the engine's: ``x`` the column, ``y`` the row, pixel centres on integers.
Mesh ``z`` is in the same frame-pixel units as x (scaled with the crop); smaller is nearer the
camera. Point indices follow MediaPipe's canonical 468-point topology: 1 nose tip, 33/133
the image-left eye's outer/inner corner, 263/362 the image-right eye's, 234/454 the
image-left/right cheek contour.

This module uses onnxruntime, OpenCV and numpy only.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceunlock.engine.imageio import as_rgb_u8
from faceunlock.engine.ortsession import LazyOnnxModel
from faceunlock.errors import InputError, ModelError
from faceunlock.paths import models_dir

Box = tuple[float, float, float, float]

MESH_FILE = "face-mesh.onnx"
IRIS_FILE = "iris.onnx"
MESH_SIZE = 192
IRIS_SIZE = 64
N_POINTS = 468
N_EYE = 71
N_IRIS = 5

#: mesh crop from the 5-point landmarks, in units of the distance between the eye centres,
#: in the eye-levelled frame: the centre this far below the eyes' midpoint, the side this
#: long (fitted to MediaPipe's rect from landmarks, see the module doc)
ROI5_DOWN = 0.50
ROI5_SIDE = 4.2
#: mesh crop from the face box alone: side this many box widths, centre this many box
#: heights below the box centre (the engine's MMOD boxes run brow to upper lip); both the
#: medians over the faces of tests/data/faces, like ROI5_*
ROIBOX_SIDE = 1.84
ROIBOX_DOWN = 0.03
#: MediaPipe's rect from landmarks: 1.5x the extent, square
ROIMESH_SCALE = 1.5
IRIS_SCALE = 2.3

#: eyes, for the eye aspect ratio: (corner, top, top, corner, bottom, bottom) as
#: p1..p6 of Soukupová & Čech's EAR; image-left eye first
EYE_EAR = ((33, 160, 158, 133, 153, 144), (362, 385, 387, 263, 373, 380))
EYE_CORNERS = ((33, 133), (362, 263))
NOSE_TIP = 1
CHEEKS = (234, 454)
#: the face oval (MediaPipe's FACEMESH_FACE_OVAL points), about one depth
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54,
             103, 67, 109)
#: points that stand out of the oval's plane the most: nose tip and ridge
NOSE = (1, 4, 5, 195, 197, 19, 94)

#: blink: the eye aspect ratio falls below this share of its open baseline ...
BLINK_DIP = 0.65
#: ... after and before frames at or above this share (open)
BLINK_OPEN = 0.85


@dataclass(frozen=True)
class Roi:
    """A rotated square in the frame: centre (cx, cy), side (pixels), angle (radians, the
    crop's x axis turned by this from the frame's, clockwise on screen as y points down)."""

    cx: float
    cy: float
    side: float
    angle: float

    def affine(self, size: int) -> np.ndarray:
        """The (2, 3) float64 map frame → crop pixels of a ``size`` crop."""
        k = self.side / size
        c, s = math.cos(self.angle), math.sin(self.angle)
        r = np.array([[c, s], [-s, c]]) / k  # R(angle)^T / k
        t = np.array([(size - 1) / 2.0, (size - 1) / 2.0]) - r @ np.array([self.cx, self.cy])
        return np.hstack([r, t[:, None]])

    def to_frame(self, pts: np.ndarray, size: int) -> np.ndarray:
        """Crop points (N, 2 or 3) → frame points, z scaled like x (float32)."""
        k = self.side / size
        c, s = math.cos(self.angle), math.sin(self.angle)
        q = (pts[:, :2].astype(np.float64) - (size - 1) / 2.0) * k
        x = self.cx + c * q[:, 0] - s * q[:, 1]
        y = self.cy + s * q[:, 0] + c * q[:, 1]
        cols = [x, y] + ([pts[:, 2].astype(np.float64) * k] if pts.shape[1] > 2 else [])
        return np.stack(cols, axis=1).astype(np.float32)

    def crop(self, image: np.ndarray, size: int, mirror: bool = False) -> np.ndarray:
        """The (size, size, 3) float32 RGB [0, 1] model input (bilinear; outside: black)."""
        m = self.affine(size)
        if mirror:
            m = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0, 0, 1]])
        patch = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        return patch.astype(np.float32) / np.float32(255.0)


def _eye_centres(lm5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-left eye centre, image-right eye centre) of the engine's 5 points."""
    a = lm5[0:2].mean(axis=0)
    b = lm5[2:4].mean(axis=0)
    return (a, b) if a[0] <= b[0] else (b, a)


def roi_from_landmarks5(landmarks: np.ndarray) -> Roi:
    """The mesh crop from the engine's (5, 2) landmarks (eye corners and nose base)."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (5, 2) or not np.all(np.isfinite(lm)):
        raise InputError(f"mesh: expected (5, 2) finite landmarks, got {lm.shape}")
    left, right = _eye_centres(lm)
    d = right - left
    iod = float(np.hypot(*d))
    if iod < 2.0:
        raise InputError(f"mesh: the eyes are {iod:.1f} px apart, too close to crop a face")
    angle = math.atan2(d[1], d[0])
    mid = (left + right) / 2.0
    down = np.array([-math.sin(angle), math.cos(angle)]) * ROI5_DOWN * iod
    return Roi(float(mid[0] + down[0]), float(mid[1] + down[1]), ROI5_SIDE * iod, angle)


def roi_from_box(box: Box) -> Roi:
    """The mesh crop from the engine's face box alone (left, top, right, bottom), upright."""
    if not all(math.isfinite(v) for v in box) or box[2] <= box[0] or box[3] <= box[1]:
        raise InputError(f"mesh: not a face box: {box}")
    w, h = box[2] - box[0], box[3] - box[1]
    return Roi((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0 + ROIBOX_DOWN * h,
               ROIBOX_SIDE * w, 0.0)


def roi_from_mesh(points: np.ndarray) -> Roi:
    """MediaPipe's crop for the next frame from (468, 2+) frame points."""
    p = np.asarray(points, np.float64)[:, :2]
    d = p[263] - p[33]
    angle = math.atan2(d[1], d[0])
    c, s = math.cos(angle), math.sin(angle)
    q = p @ np.array([[c, -s], [s, c]])  # into the levelled frame
    lo, hi = q.min(axis=0), q.max(axis=0)
    mid = (lo + hi) / 2.0
    side = float(max(hi - lo)) * ROIMESH_SCALE
    cx, cy = c * mid[0] - s * mid[1], s * mid[0] + c * mid[1]
    return Roi(float(cx), float(cy), side, angle)


class _PointsModel(LazyOnnxModel):
    """One of the two MediaPipe models: (1, S, S, 3) float RGB [0, 1] in, (1, width) out."""

    def __init__(self, path: Path, size: int, width: int, threads: int | None) -> None:
        super().__init__(path, threads)
        self.size = size
        self.width = width

    def _accept(self, inp: Any, out: Any, meta: dict[str, Any]) -> None:
        want_in = [1, self.size, self.size, 3]
        if inp.type != "tensor(float)" or list(inp.shape) != want_in:
            raise ModelError(self.path, f"input {inp.name!r} is {inp.type} {inp.shape}, "
                             f"expected float {want_in}")
        if out.type != "tensor(float)" or list(out.shape) != [1, self.width]:
            raise ModelError(self.path, f"output {out.name!r} is {out.type} {out.shape}, "
                             f"expected float [1, {self.width}]")
        spec = meta.get("input", {})
        if not isinstance(spec, dict) or spec.get("channels") != "RGB" \
                or list(spec.get("range", [])) != [0.0, 1.0]:
            raise ModelError(self.path, "sidecar input is not RGB in [0, 1]")

    def run(self, x: np.ndarray) -> np.ndarray:
        """(S, S, 3) float32 → (width,) float32."""
        self.load()
        assert self._session is not None
        (y,) = self._session.run(None, {self._input_name: x[None].astype(np.float32)})
        return np.asarray(y[0], np.float32)


@dataclass
class MeshResult:
    """points: (468, 3) float32 frame coordinates (x, y, z); presence: face probability
    0..1; roi: the crop it was computed on."""

    points: np.ndarray
    presence: float
    roi: Roi


@dataclass
class EyeResult:
    """contour: (71, 3) eye contour and brow points, iris: (5, 3) iris centre then edge, in
    frame coordinates (z in frame pixels, relative)."""

    contour: np.ndarray
    iris: np.ndarray


class FaceMesh:
    """The face mesh and iris models (loaded lazily, once each; sessions are re-entrant)."""

    def __init__(self, models: Path | None = None, threads: int | None = None) -> None:
        mdir = models if models is not None else models_dir()
        self.mesh_model = _PointsModel(mdir / MESH_FILE, MESH_SIZE, 3 * N_POINTS + 1, threads)
        self.iris_model = _PointsModel(mdir / IRIS_FILE, IRIS_SIZE, 3 * (N_EYE + N_IRIS),
                                       threads)

    def load(self, iris: bool = False) -> FaceMesh:
        self.mesh_model.load()
        if iris:
            self.iris_model.load()
        return self

    def run_roi(self, image: np.ndarray, roi: Roi) -> MeshResult:
        """The mesh on one crop of an RGB image."""
        out = self.mesh_model.run(roi.crop(image, MESH_SIZE))
        pts = roi.to_frame(out[: 3 * N_POINTS].reshape(N_POINTS, 3), MESH_SIZE)
        return MeshResult(pts, float(out[-1]), roi)

    def mesh(self, image: np.ndarray, box: Box | None = None,
             landmarks5: np.ndarray | None = None, refine: int = 0) -> MeshResult:
        """The 468 points of the face at ``landmarks5`` (preferred) or ``box`` in an RGB
        image; ``refine`` more passes each re-crop from the previous mesh (MediaPipe's
        tracking rule; each pass costs one more model run)."""
        image = as_rgb_u8(image)
        if landmarks5 is not None:
            roi = roi_from_landmarks5(landmarks5)
        elif box is not None:
            roi = roi_from_box(box)
        else:
            raise InputError("mesh: give the face's box or its 5 landmarks")
        res = self.run_roi(image, roi)
        for _ in range(refine):
            res = self.run_roi(image, roi_from_mesh(res.points))
        return res

    def eyes(self, image: np.ndarray, mesh: MeshResult) -> tuple[EyeResult, EyeResult]:
        """Iris and eye contour of (image-left eye, image-right eye) from a mesh."""
        image = as_rgb_u8(image)
        out = []
        for (a, b), mirror in zip(EYE_CORNERS, (False, True), strict=True):
            pa, pb = mesh.points[a, :2].astype(np.float64), mesh.points[b, :2].astype(np.float64)
            if pa[0] > pb[0]:
                pa, pb = pb, pa
            d = pb - pa
            dist = float(np.hypot(*d))
            if dist < 1.0:
                raise InputError("mesh: eye corners coincide; no eye to crop")
            mid = (pa + pb) / 2.0
            roi = Roi(float(mid[0]), float(mid[1]), IRIS_SCALE * dist, math.atan2(d[1], d[0]))
            y = self.iris_model.run(roi.crop(image, IRIS_SIZE, mirror)).reshape(-1, 3)
            if mirror:
                y = y.copy()
                y[:, 0] = IRIS_SIZE - 1 - y[:, 0]
            pts = roi.to_frame(y, IRIS_SIZE)
            out.append(EyeResult(pts[:N_EYE], pts[N_EYE:]))
        return out[0], out[1]


_SHARED: dict[str, FaceMesh] = {}
_SHARED_LOCK = threading.Lock()


def get_face_mesh(models: Path | None = None) -> FaceMesh:
    """The per-process :class:`FaceMesh` for ``models`` (default ``models/``): its sessions
    open once, on first use."""
    key = str(models or models_dir())
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = FaceMesh(models)
        return _SHARED[key]


# --------------------------------------------------------------------------------------------
# Cues on the points
# --------------------------------------------------------------------------------------------


def _pts(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[0] != N_POINTS or p.shape[1] not in (2, 3):
        raise InputError(f"mesh: expected ({N_POINTS}, 2 or 3) points, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise InputError("mesh: points must be finite")
    return p


def eye_aspect_ratio(points: np.ndarray) -> float:
    """The mean eye aspect ratio of both eyes, (|p2-p6| + |p3-p5|) / (2 |p1-p4|) on the
    (468, 2+) mesh points: about 0.25-0.35 open, towards 0 closed."""
    p = _pts(points)[:, :2]
    ears = []
    for p1, p2, p3, p4, p5, p6 in EYE_EAR:
        width = float(np.linalg.norm(p[p1] - p[p4]))
        if width <= 0:
            raise InputError("mesh: degenerate eye (its corners coincide)")
        ears.append((np.linalg.norm(p[p2] - p[p6]) + np.linalg.norm(p[p3] - p[p5]))
                    / (2.0 * width))
    return float(np.mean(ears))


def blinked(frames_points: Sequence[np.ndarray], dip: float = BLINK_DIP,
            open_share: float = BLINK_OPEN) -> bool:
    """Whether the eyes blinked in a sequence of meshes (each (468, 2+) points of the same
    face, oldest first): the eye aspect ratio was open (at least ``open_share`` of the open
    baseline), then fell below ``dip`` of it, then opened again. The baseline is the
    sequence's 90th percentile of the ratio (the eyes are open most of the time). Needs at
    least 3 frames; fewer give False."""
    if not 0 < dip < open_share <= 1:
        raise InputError(f"blinked: need 0 < dip < open_share <= 1, got {dip}, {open_share}")
    ears = np.array([eye_aspect_ratio(p) for p in frames_points])
    if len(ears) < 3:
        return False
    base = float(np.percentile(ears, 90))
    if base <= 0:
        return False
    r = ears / base
    state = 0  # 0: waiting for open, 1: open seen, 2: closed after open
    for v in r:
        if state == 0 and v >= open_share:
            state = 1
        elif state == 1 and v < dip:
            state = 2
        elif state == 2 and v >= open_share:
            return True
    return False


def interocular(points: np.ndarray) -> float:
    """Distance between the two eyes' outer corners (33, 263), frame pixels."""
    p = _pts(points)
    return float(np.linalg.norm(p[263, :2] - p[33, :2]))


def yaw_degrees(points: np.ndarray) -> float:
    """The head's yaw from the mesh's own depth: the angle of the cheek-to-cheek line
    (234 → 454) out of the image plane, after levelling the eyes. Positive: the nose points
    towards the image's right. Needs (468, 3) points."""
    p = _pts(points)
    if p.shape[1] != 3:
        raise InputError("yaw: needs 3-D mesh points (468, 3)")
    d = p[263, :2] - p[33, :2]
    a = math.atan2(d[1], d[0])
    v = p[CHEEKS[1]] - p[CHEEKS[0]]
    vx = math.cos(a) * v[0] + math.sin(a) * v[1]
    return math.degrees(math.atan2(v[2], vx))


def depth_range(points: np.ndarray) -> float:
    """The mesh's z range (nose tip to cheeks, max - min of z) in interocular units."""
    p = _pts(points)
    if p.shape[1] != 3:
        raise InputError("depth_range: needs 3-D mesh points (468, 3)")
    return float((p[:, 2].max() - p[:, 2].min()) / max(interocular(p), 1e-6))


@dataclass(frozen=True)
class Parallax:
    """Between two meshes of one face: motion, the oval points' median displacement; and
    residual, the nose points' median error when a homography fitted to the oval and eye
    corners predicts them; yaw_change, in degrees (from the mesh depth). Lengths in
    interocular distances (of the first mesh)."""

    motion: float
    residual: float
    yaw_change: float


_FIT = tuple(sorted(set(FACE_OVAL) | {33, 133, 362, 263}))


def parallax(a: np.ndarray, b: np.ndarray) -> Parallax:
    """How far two meshes of one face are from one plane moved by a homography (a flat photo
    moves so; a turning head does not: its nose moves against its oval)."""
    pa, pb = _pts(a), _pts(b)
    iod = max(interocular(pa), 1e-6)
    src = pa[list(_FIT), :2].astype(np.float32)
    dst = pb[list(_FIT), :2].astype(np.float32)
    hm, _ = cv2.findHomography(src, dst, 0)
    motion = float(np.median(np.linalg.norm(dst - src, axis=1))) / iod
    if hm is None:
        return Parallax(motion, float("nan"), float("nan"))
    nose_a = pa[list(NOSE), :2].astype(np.float64)
    pred = cv2.perspectiveTransform(nose_a[None], hm)[0]
    resid = float(np.median(np.linalg.norm(pred - pb[list(NOSE), :2], axis=1))) / iod
    dyaw = (yaw_degrees(pb) - yaw_degrees(pa)) if pa.shape[1] == 3 and pb.shape[1] == 3 \
        else float("nan")
    return Parallax(motion, resid, dyaw)

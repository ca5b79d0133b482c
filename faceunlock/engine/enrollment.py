"""Enrolment: capture N good, varied anchors of one person from a frame source.

Each offered frame goes through quality gates, in order: not dark; exactly one face; face
big enough; face region neither too dark nor overexposed; sharp; not a near-duplicate of an
anchor already taken. A rejected frame gets a plain-language reason (for the wizard). Dim
light lowers the contrast the sharpness gate measures, so an unsharp face in a dim region is
reported as too dark, not as moving.

Pose guidance: the landmarks give a rough yaw and pitch. The session asks for a sequence of
poses (frontal, slightly left, right, up, down) and records which ones its anchors cover. By
default the poses are guidance, not gates: an anchor in another pose is still accepted, so a
user who cannot turn their head can still enrol. ``require_pose=True`` makes them gates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceunlock.engine.pipeline import FaceObservation
from faceunlock.engine.quality import is_dark, region_brightness, sharpness
from faceunlock.engine.sources import Frame
from faceunlock.errors import InputError

POSES = ("frontal", "left", "right", "up", "down")
INSTRUCTIONS = {
    "frontal": "Look straight at the camera",
    "left": "Turn your head slightly to the left",
    "right": "Turn your head slightly to the right",
    "up": "Tilt your head slightly up",
    "down": "Tilt your head slightly down",
}
THUMB = 64


@dataclass(frozen=True)
class EnrolParams:
    anchors: int = 10
    min_face: float = 80.0  # px, box side
    min_sharpness: float = 25.0  # variance of the Laplacian on the 75x75 face chip
    min_brightness: float = 50.0  # mean grey level of the face region
    max_brightness: float = 220.0
    #: an unsharp face whose region is darker than this is dim, not moving ("too dark")
    dim_brightness: float = 100.0
    min_anchor_distance: float = 0.08  # near-duplicate gate (Euclidean, embedding space)
    yaw_tolerance: float = 0.2  # |yaw ratio| below this counts as frontal
    pitch_tolerance: float = 0.10
    require_pose: bool = False
    dark_level: int = 40
    dark_fraction: float = 0.95

    def __post_init__(self) -> None:
        if not 1 <= self.anchors <= 50:
            raise InputError(f"enrol.anchors must be between 1 and 50, got {self.anchors}")


def head_pose(landmarks: np.ndarray) -> tuple[float, float]:
    """Rough (yaw, pitch) from the 5 points, in units of the inter-ocular distance.

    landmarks: (5, 2) — two points per eye (indices 0-1 and 2-3), then the nose base.
    yaw > 0: the nose is right of the eye midpoint in the image (with an unmirrored camera,
    the person turned to their left); pitch: nose drop below the eye line, in the image's
    downward direction (larger = head tilted down).
    """
    lm = np.asarray(landmarks, np.float64)
    eye_a = lm[0:2].mean(axis=0)
    eye_b = lm[2:4].mean(axis=0)
    image_left, image_right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    mid = (image_left + image_right) / 2.0
    axis = image_right - image_left
    iod = float(np.hypot(*axis))
    if iod < 1e-6:
        return 0.0, 0.0
    ux = axis / iod
    uy = np.array([-ux[1], ux[0]])
    v = lm[4] - mid
    return float(v @ ux / iod), float(v @ uy / iod)


def classify_pose(yaw: float, pitch: float, frontal_pitch: float, p: EnrolParams) -> str:
    dp = pitch - frontal_pitch
    if abs(yaw) <= p.yaw_tolerance and abs(dp) <= p.pitch_tolerance:
        return "frontal"
    if abs(yaw) / p.yaw_tolerance >= abs(dp) / p.pitch_tolerance:
        return "left" if yaw > 0 else "right"
    return "down" if dp > 0 else "up"


@dataclass
class Capture:
    """One accepted anchor. embedding: (128,) float32; thumbnail: (64, 64, 3) uint8 RGB."""

    embedding: np.ndarray
    thumbnail: np.ndarray
    pose: str
    quality: dict[str, float]
    frame_index: int


@dataclass
class Feedback:
    """The outcome of offering one frame."""

    accepted: bool
    reason: str  # plain language; "" when accepted
    code: str  # machine-readable: ok, dark, no_face, several_faces, too_far, blurry, ...
    progress: int  # anchors taken so far
    target: int
    next_pose: str
    instruction: str
    box: tuple[float, float, float, float] | None = None

    @property
    def done(self) -> bool:
        return self.progress >= self.target

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "code": self.code,
            "reason": self.reason,
            "progress": self.progress,
            "target": self.target,
            "next_pose": self.next_pose,
            "instruction": self.instruction,
        }


@dataclass
class EnrolmentSession:
    """Feed frames with :meth:`offer` until :attr:`done`. ``pipe`` is a Pipeline."""

    pipe: Any
    params: EnrolParams = field(default_factory=EnrolParams)
    captures: list[Capture] = field(default_factory=list)
    frontal_pitch: float | None = None

    @property
    def done(self) -> bool:
        return len(self.captures) >= self.params.anchors

    def pose_plan(self) -> list[str]:
        """The pose asked for at each anchor index: frontal first, then round the others."""
        return [POSES[i % len(POSES)] for i in range(self.params.anchors)]

    def next_pose(self) -> str:
        if self.done:
            return "frontal"
        taken = [c.pose for c in self.captures]
        for pose in self.pose_plan():
            if pose in taken:
                taken.remove(pose)
            else:
                return pose
        return "frontal"

    def covered_poses(self) -> list[str]:
        return sorted({c.pose for c in self.captures}, key=POSES.index)

    def _fb(self, ok: bool, code: str, reason: str, box: Any = None) -> Feedback:
        pose = self.next_pose()
        return Feedback(
            ok, reason, code, len(self.captures), self.params.anchors, pose, INSTRUCTIONS[pose], box
        )

    def offer(self, frame: Frame | np.ndarray) -> Feedback:
        """Evaluate one frame; keep it as an anchor when it passes every gate."""
        p = self.params
        image = frame.image if isinstance(frame, Frame) else frame
        index = frame.index if isinstance(frame, Frame) else len(self.captures)
        if self.done:
            return self._fb(False, "done", "Enrolment is complete")
        if is_dark(image, dark_level=p.dark_level, dark_fraction=p.dark_fraction):
            return self._fb(False, "dark", "It is too dark: turn on a light in front of you")
        obs: list[FaceObservation] = self.pipe.observe(image, select="all")
        if not obs:
            return self._fb(False, "no_face", "No face found: look at the camera")
        if len(obs) > 1:
            return self._fb(
                False,
                "several_faces",
                "Several faces in view: make sure only you are in front of the camera",
            )
        o = obs[0]
        if o.size < p.min_face:
            return self._fb(False, "too_far", "Move closer to the camera", o.box)
        bright = region_brightness(image, o.box)
        if bright < p.min_brightness:
            return self._fb(
                False, "face_dark", "Your face is too dark: add light in front of you", o.box
            )
        if bright > p.max_brightness:
            return self._fb(
                False,
                "face_bright",
                "Your face is overexposed: move away from the bright light",
                o.box,
            )
        # measured on a half-size chip, close to the native resolution of small webcam faces,
        # so upsampling in the alignment does not read as blur
        sharp = sharpness(cv2.resize(o.chip, (75, 75), interpolation=cv2.INTER_AREA))
        if sharp < p.min_sharpness:
            if bright < p.dim_brightness:  # low light: little contrast, not motion
                return self._fb(
                    False,
                    "face_dark",
                    "It is too dark to see your face clearly: add light in front of you",
                    o.box,
                )
            return self._fb(False, "blurry", "Hold still for a moment", o.box)
        yaw, pitch = head_pose(o.landmarks)
        if self.frontal_pitch is None:
            # the first accepted anchor must be frontal in yaw; its pitch is the reference
            if abs(yaw) > p.yaw_tolerance:
                return self._fb(False, "pose", INSTRUCTIONS["frontal"], o.box)
            self.frontal_pitch = pitch
        pose = classify_pose(yaw, pitch, self.frontal_pitch, p)
        wanted = self.next_pose()
        if p.require_pose and pose != wanted:
            return self._fb(False, "pose", INSTRUCTIONS[wanted], o.box)
        if self.captures:
            dmin = float(
                np.min(
                    np.linalg.norm(
                        np.stack([c.embedding for c in self.captures]) - o.embedding, axis=1
                    )
                )
            )
            if dmin < p.min_anchor_distance:
                return self._fb(
                    False,
                    "duplicate",
                    f"{INSTRUCTIONS[wanted]} (this view is already captured)",
                    o.box,
                )
        thumb = cv2.resize(o.chip, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
        q = {
            "sharpness": round(sharp, 2),
            "brightness": round(bright, 2),
            "face_px": round(o.size, 1),
            "yaw": round(yaw, 3),
            "pitch": round(pitch, 3),
            "det_score": round(o.score, 3),
        }
        self.captures.append(Capture(o.embedding.astype(np.float32), thumb, pose, q, index))
        return self._fb(True, "ok", "", o.box)

    def run(self, frames: Iterable[Frame]) -> list[Feedback]:
        """Offer frames until done or the frames run out; return every feedback."""
        out = []
        for f in frames:
            out.append(self.offer(f))
            if self.done:
                break
        return out

    def embeddings(self) -> np.ndarray:
        """(N, 128) float32 anchors taken so far."""
        if not self.captures:
            return np.zeros((0, 128), np.float32)
        return np.stack([c.embedding for c in self.captures]).astype(np.float32)

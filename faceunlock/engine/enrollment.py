"""Enrolment: capture good, varied anchors of one person from a frame source.

Each offered frame goes through quality gates, in order: not dark; exactly one face; face
big enough; face region neither too dark nor overexposed; sharp; in the pose asked for; not
a near-duplicate of an anchor already taken. A rejected frame gets a plain-language reason
(for the wizard and the CLI). Dim light lowers the contrast the sharpness gate measures, so
an unsharp face in a dim region is reported as too dark, not as moving.

Guided capture (the default, ``EnrolParams.guided``): the session asks for a sequence of
poses (centre, a small turn to the left, to the right, a small tilt up, down), each for its
share of the anchors, and measures the pose of every face from its landmarks (rough yaw and
pitch angles, :func:`pose_degrees`). An anchor is taken only when the measured pose matches
the prompt, differs enough from the anchors already taken (embedding distance), and the
capture is paced on the frames' timestamps: after a new prompt the user gets
``settle_seconds`` to follow it, and anchors are at least ``min_anchor_gap`` apart, so a
cooperative user takes 10-20 s for the default 10 anchors (never the 2 s of a camera stream
read as fast as it decodes). Centre, left and right are required: a required pose not seen
for ``pose_timeout`` seconds ends the capture as failed, with a message that names what is
missing ("turn a little to the left"), and nothing is to be saved. Up and down are asked for
but optional (a laptop camera below the eyes, or a user who cannot tilt): one not seen for
``optional_timeout`` seconds is skipped, and the session says so (:attr:`skipped`).

Adding an appearance to an existing template: with ``owner`` (the template's Matcher) and
``owner_threshold``, every anchor must match the enrolled owner; one that does not ends the
capture as failed ("not_owner"): the whole appearance is refused.

``guided=False`` keeps the poses as guidance only and takes any distinct good frame at once
(programmatic callers and tests where the capture itself is not the point).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from faceunlock.config import AuthConfig, EnrolConfig
from faceunlock.engine.pipeline import FaceObservation
from faceunlock.engine.quality import is_dark, region_brightness, sharpness
from faceunlock.engine.sources import Frame
from faceunlock.errors import InputError

POSES = ("frontal", "left", "right", "up", "down")
REQUIRED_POSES = ("frontal", "left", "right")
INSTRUCTIONS = {
    "frontal": "Look straight at the camera",
    "left": "Turn your head a little to the left",
    "right": "Turn your head a little to the right",
    "up": "Tilt your head a little up",
    "down": "Tilt your head a little down",
}
#: what is missing, for "we never saw you ..." messages
MISSING = {
    "frontal": "look straight at the camera",
    "left": "turn a little to the left",
    "right": "turn a little to the right",
    "up": "tilt your head a little up",
    "down": "tilt your head a little down",
}
#: short names, for the per-pose progress
POSE_NAMES = {"frontal": "Centre", "left": "Left", "right": "Right", "up": "Up", "down": "Down"}
THUMB = 64
#: the rough head model of :func:`pose_degrees`: the nose base sits this many eye distances
#: in front of the eye centres (so a nose offset of half the eye distance is a 45° turn)
NOSE_DEPTH = 0.5
FAILED_CODES = frozenset({"missing_pose", "not_owner"})


@dataclass(frozen=True)
class EnrolParams:
    """How a capture runs. ``anchors``, ``dark_level`` and ``dark_fraction`` default to the
    enrol.anchors, auth.dark_level and auth.dark_fraction config keys."""

    anchors: int = EnrolConfig.anchors
    min_face: float = 80.0  # px, box side
    min_sharpness: float = 25.0  # variance of the Laplacian on the 75x75 face chip
    min_brightness: float = 50.0  # mean grey level of the face region
    max_brightness: float = 220.0
    #: an unsharp face whose region is darker than this is dim, not moving ("too dark")
    dim_brightness: float = 100.0
    min_anchor_distance: float = 0.08  # near-duplicate gate (Euclidean, embedding space)
    guided: bool = True  # poses are gates and the capture is paced (see the module doc)
    frontal_degrees: float = 8.0  # |yaw| and |pitch| at most this: centre
    turn_degrees: tuple[float, float] = (10.0, 35.0)  # |yaw| of a small turn
    tilt_degrees: tuple[float, float] = (8.0, 30.0)  # |pitch| of a small tilt
    settle_seconds: float = 0.8  # after a new prompt, before an anchor is taken
    min_anchor_gap: float = 0.4  # seconds between anchors (frame timestamps)
    pose_timeout: float = 15.0  # a required pose not seen for this long fails the capture
    optional_timeout: float = 5.0  # an optional pose not seen for this long is skipped
    dark_level: int = AuthConfig.dark_level
    dark_fraction: float = AuthConfig.dark_fraction

    def __post_init__(self) -> None:
        if not 1 <= self.anchors <= 50:
            raise InputError(f"enrol.anchors must be between 1 and 50, got {self.anchors}")
        for name in ("settle_seconds", "min_anchor_gap", "pose_timeout", "optional_timeout"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"enrolment {name} must be a number >= 0, got {v!r}")

    def quotas(self) -> dict[str, int]:
        """Anchors per pose of a guided capture: an even share each, the remainder to
        centre, left and right first (3 anchors: one each of those; 10: two of every pose).
        Poses with no share are not asked for."""
        per, rem = divmod(self.anchors, len(POSES))
        return {p: per + (1 if i < rem else 0) for i, p in enumerate(POSES)}


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


def pose_degrees(yaw: float, pitch: float, frontal_pitch: float) -> tuple[float, float]:
    """(yaw, pitch) in rough degrees from :func:`head_pose`'s ratios and the user's frontal
    pitch ratio. yaw > 0: turned to their left (unmirrored camera); pitch > 0: tilted up.

    Head model: the nose base lies :data:`NOSE_DEPTH` eye distances in front of the eye
    centres, so ``yaw = atan(ratio / NOSE_DEPTH)``. A turn shortens the eye distance in the
    image by cos(yaw) but not the nose drop, so the pitch ratio is corrected by that factor
    before it is compared with the frontal one. Accurate to some degrees for small poses,
    which is all the pose prompts need."""
    yd = math.degrees(math.atan2(yaw, NOSE_DEPTH))
    c = math.cos(math.radians(yd))
    rise = frontal_pitch - pitch * c  # the nose base moved up towards the eye line
    pd = math.degrees(math.atan2(rise, NOSE_DEPTH * c))
    return yd, pd


def classify_pose(yaw: float, pitch: float, frontal_pitch: float, p: EnrolParams) -> str:
    """The pose of a face (ratios of :func:`head_pose`): one of :data:`POSES`, or ``other``
    for a pose between the bands or beyond a small turn or tilt."""
    yd, pd = pose_degrees(yaw, pitch, frontal_pitch)
    if abs(yd) <= p.frontal_degrees and abs(pd) <= p.frontal_degrees:
        return "frontal"
    lo, hi = p.turn_degrees
    if lo <= abs(yd) <= hi and abs(pd) <= hi / 2:
        return "left" if yd > 0 else "right"
    lo, hi = p.tilt_degrees
    if lo <= abs(pd) <= hi and abs(yd) <= 1.5 * p.frontal_degrees:
        return "up" if pd > 0 else "down"
    return "other"


@dataclass
class Capture:
    """One accepted anchor. embedding: (128,) float32; thumbnail: (64, 64, 3) uint8 RGB;
    timestamp: the frame's (see :class:`~faceunlock.engine.sources.Frame`), None for bare
    images."""

    embedding: np.ndarray
    thumbnail: np.ndarray
    pose: str
    quality: dict[str, float]
    frame_index: int
    timestamp: float | None = None


@dataclass(frozen=True)
class PoseProgress:
    """One pose of a guided capture: anchors taken of ``quota``; ``state`` is ``done``,
    ``current`` (being asked for), ``waiting``, ``skipped`` or ``missing`` (failed)."""

    pose: str
    taken: int
    quota: int
    state: str

    @property
    def name(self) -> str:
        return POSE_NAMES[self.pose]


@dataclass
class Feedback:
    """The outcome of offering one frame."""

    accepted: bool
    reason: str  # plain language; "" when accepted
    code: str  # machine-readable: ok, dark, no_face, several_faces, too_far, blurry, pose,
    # wait, hold, duplicate, skipped, done; the capture failed: missing_pose, not_owner
    progress: int  # anchors taken so far
    target: int  # anchors the capture will take (less once optional poses were skipped)
    next_pose: str
    instruction: str
    box: tuple[float, float, float, float] | None = None
    poses: tuple[PoseProgress, ...] = ()
    complete: bool = False

    @property
    def done(self) -> bool:
        return self.complete

    @property
    def failed(self) -> bool:
        return self.code in FAILED_CODES

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "code": self.code,
            "reason": self.reason,
            "progress": self.progress,
            "target": self.target,
            "next_pose": self.next_pose,
            "instruction": self.instruction,
            "poses": {p.pose: [p.taken, p.quota, p.state] for p in self.poses},
        }


@dataclass
class EnrolmentSession:
    """Feed frames with :meth:`offer` until :attr:`done` (or :attr:`failure`). ``pipe`` is a
    Pipeline; ``owner``/``owner_threshold``: the existing template's Matcher and threshold
    when adding an appearance (every anchor must match them)."""

    pipe: Any
    params: EnrolParams = field(default_factory=EnrolParams)
    captures: list[Capture] = field(default_factory=list)
    frontal_pitch: float | None = None
    owner: Any = None
    owner_threshold: float | None = None
    skipped: list[str] = field(default_factory=list)
    failure: str = ""  # why the capture failed (nothing is to be saved); "" while it has not
    failure_code: str = ""  # missing_pose or not_owner
    first_timestamp: float | None = None
    _asked_at: float | None = None  # when the current pose was first asked for
    _last_anchor_at: float | None = None

    # ---- the plan

    def pose_plan(self) -> list[str]:
        """The pose asked for at each anchor index, in order."""
        if not self.params.guided:
            return [POSES[i % len(POSES)] for i in range(self.params.anchors)]
        return [p for p, q in self.params.quotas().items() for _ in range(q)]

    def taken(self, pose: str) -> int:
        return sum(1 for c in self.captures if c.pose == pose)

    @property
    def target(self) -> int:
        if not self.params.guided:
            return self.params.anchors
        return sum(q for p, q in self.params.quotas().items() if p not in self.skipped)

    @property
    def done(self) -> bool:
        if self.failure:
            return False
        if not self.params.guided:
            return len(self.captures) >= self.params.anchors
        return self.current_pose() is None

    def current_pose(self) -> str | None:
        """The pose being asked for (guided), None once every pose is done or skipped."""
        for p, q in self.params.quotas().items():
            if q > 0 and p not in self.skipped and self.taken(p) < q:
                return p
        return None

    def next_pose(self) -> str:
        if self.params.guided:
            return self.current_pose() or "frontal"
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
        return sorted({c.pose for c in self.captures if c.pose in POSES}, key=POSES.index)

    def pose_progress(self) -> tuple[PoseProgress, ...]:
        if not self.params.guided:
            return ()
        cur = self.current_pose()
        out = []
        for p, q in self.params.quotas().items():
            if q == 0:
                continue
            n = self.taken(p)
            if p in self.skipped:
                state = "skipped"
            elif n >= q:
                state = "done"
            elif p == cur:
                state = "missing" if self.failure_code == "missing_pose" else "current"
            else:
                state = "waiting"
            out.append(PoseProgress(p, n, q, state))
        return tuple(out)

    def summary(self) -> str:
        """Plain words: what was captured, and what was skipped."""
        parts = [f"{POSE_NAMES[p].lower()} {self.taken(p)}" for p in self.covered_poses()]
        text = f"{len(self.captures)} anchors ({', '.join(parts)})" if parts else "no anchors"
        if self.skipped:
            names = " and ".join(POSE_NAMES[p].lower() for p in self.skipped)
            text += (f"; {names} not seen, skipped (optional: unlock may need a second "
                     "look when you tilt your head)")
        return text

    # ---- frames

    def _fb(self, ok: bool, code: str, reason: str, box: Any = None) -> Feedback:
        pose = self.next_pose()
        return Feedback(
            ok, reason, code, len(self.captures), self.target, pose, INSTRUCTIONS[pose], box,
            self.pose_progress(), self.done,
        )

    def _fail(self, code: str, reason: str, box: Any = None) -> Feedback:
        self.failure, self.failure_code = reason, code
        return self._fb(False, code, reason, box)

    def _check_time(self, t: float | None) -> Feedback | None:
        """Advance past an optional pose not seen in time; fail on a required one."""
        p = self.params
        if not p.guided or t is None:
            return None
        pose = self.current_pose()
        if pose is None:
            return None
        if self._asked_at is None:
            self._asked_at = t
            return None
        waited = t - self._asked_at
        if pose in REQUIRED_POSES:
            if waited > p.pose_timeout:
                return self._fail(
                    "missing_pose",
                    f"Not finished: FaceUnlock never saw you {MISSING[pose]} in "
                    f"{p.pose_timeout:g} s "
                    f"({self.taken(pose)} of {p.quotas()[pose]} {POSE_NAMES[pose].lower()} "
                    "pictures). Nothing was saved. Start again and "
                    f"{MISSING[pose]} when asked.",
                )
        elif waited > p.optional_timeout:
            self.skipped.append(pose)
            self._asked_at = t
            return self._fb(
                False, "skipped",
                f"Skipped: FaceUnlock did not see you {MISSING[pose]} (optional)",
            )
        return None

    def offer(self, frame: Frame | np.ndarray) -> Feedback:
        """Evaluate one frame; keep it as an anchor when it passes every gate."""
        p = self.params
        image = frame.image if isinstance(frame, Frame) else frame
        index = frame.index if isinstance(frame, Frame) else len(self.captures)
        t = frame.timestamp if isinstance(frame, Frame) else None
        if self.failure:
            return self._fb(False, self.failure_code, self.failure)
        if self.done:
            return self._fb(False, "done", "Enrolment is complete")
        if self.first_timestamp is None:
            self.first_timestamp = t
        timed = self._check_time(t)
        if timed is not None:
            return timed
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
        wanted = self.next_pose()
        if self.frontal_pitch is None:
            # the first accepted anchor must be frontal in yaw (unguided: at most a small
            # turn); its pitch is the reference
            limit = p.frontal_degrees if p.guided else p.turn_degrees[1]
            if abs(pose_degrees(yaw, 0.0, 0.0)[0]) > limit:
                return self._fb(False, "pose", INSTRUCTIONS["frontal"], o.box)
            reference = pitch
        else:
            reference = self.frontal_pitch
        pose = classify_pose(yaw, pitch, reference, p)
        if p.guided:
            if pose != wanted:
                return self._fb(False, "pose", INSTRUCTIONS[wanted], o.box)
            if t is not None and self._asked_at is not None and (
                t - self._asked_at < p.settle_seconds
            ):
                return self._fb(False, "wait", INSTRUCTIONS[wanted], o.box)
            if t is not None and self._last_anchor_at is not None and (
                t - self._last_anchor_at < p.min_anchor_gap
            ):
                return self._fb(False, "hold", f"{INSTRUCTIONS[wanted]}: hold it", o.box)
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
        if self.owner is not None and self.owner_threshold is not None:
            score = float(self.owner.scores(o.embedding[None].astype(np.float32))[0])
            if score > self.owner_threshold:
                return self._fail(
                    "not_owner",
                    "This face does not match the enrolled owner, so it cannot be added: only "
                    "the person already enrolled can add an appearance. Nothing was saved. "
                    "To enrol someone else, use “Replace my face…” (it starts over).",
                    o.box,
                )
        if self.frontal_pitch is None:
            self.frontal_pitch = pitch
        yd, pd = pose_degrees(yaw, pitch, self.frontal_pitch)
        thumb = cv2.resize(o.chip, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
        q = {
            "sharpness": round(sharp, 2),
            "brightness": round(bright, 2),
            "face_px": round(o.size, 1),
            "yaw": round(yaw, 3),
            "pitch": round(pitch, 3),
            "yaw_deg": round(yd, 1),
            "pitch_deg": round(pd, 1),
            "det_score": round(o.score, 3),
        }
        self.captures.append(
            Capture(o.embedding.astype(np.float32), thumb, pose, q, index, t)
        )
        self._last_anchor_at = t
        if p.guided and self.current_pose() != wanted:
            self._asked_at = t  # the next pose is asked for from now
        return self._fb(True, "ok", "", o.box)

    def run(self, frames: Iterable[Frame]) -> list[Feedback]:
        """Offer frames until done, failed, or the frames run out; return every feedback."""
        out = []
        for f in frames:
            out.append(self.offer(f))
            if self.done or self.failure:
                break
        return out

    def missing_message(self) -> str:
        """Why an unfinished capture is not complete, naming the pose still missing."""
        if self.failure:
            return self.failure
        pose = self.current_pose() if self.params.guided else None
        if pose is None:
            return f"only {len(self.captures)} of {self.target} anchors were captured"
        return (f"FaceUnlock did not see you {MISSING[pose]} ({self.taken(pose)} of "
                f"{self.params.quotas()[pose]} {POSE_NAMES[pose].lower()} pictures)")

    def capture_seconds(self) -> float:
        """Frame time from the first frame offered to the last anchor (0 without
        timestamps)."""
        if self.first_timestamp is None or not self.captures:
            return 0.0
        last = self.captures[-1].timestamp
        return 0.0 if last is None else last - self.first_timestamp

    def embeddings(self) -> np.ndarray:
        """(N, 128) float32 anchors taken so far."""
        if not self.captures:
            return np.zeros((0, 128), np.float32)
        return np.stack([c.embedding for c in self.captures]).astype(np.float32)

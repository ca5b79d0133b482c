"""The active liveness challenge (``liveness.level = active``): after the matched face has
passed the passive checks, the user is asked to turn the head to a randomly chosen side, and
the same tracked face must do it within a time window.

Why
    A replayed video can blink and turn, and a passive model may score a good screen as
    live. What a recording cannot do is follow a prompt it does not know: the direction is
    drawn at random (:mod:`secrets` in production, an injectable :class:`random.Random` in
    tests) only once the attempt would otherwise accept, and so is the moment of the prompt
    (0 to :data:`MAX_DELAY` s after the match; the head must hold still until then). The
    first clear movement must be the asked one, after the prompt. A clip that turns its own
    fixed way therefore passes only the draws whose side matches it *and* whose moment puts
    the prompt just before its turn (see docs/liveness.md for the measured rate); a clip
    that holds still passes none.

Yaw from five points (:func:`head_pose`)
    The engine's landmarks are the four eye corners and the nose base. The nose base lies in
    front of the eyes, so when the head turns it slides sideways relative to the midpoint of
    the eyes: ``yaw = <nose - eye midpoint, eye axis> / inter-ocular distance`` (about 0.01
    per degree from a face's proportions, not measured: the clips have no angle ground truth;
    0 facing the camera). The eye axis is oriented so that
    positive yaw is the nose moving to the image's right: the camera's frames are not
    mirrored, so that is a turn to the user's own **left**.

The decision (:class:`HeadTurn`)
    * baseline: the median yaw of the matched face on the frames before the prompt (the
      matched frames of the decision window), per attempt;
    * until the prompt (a random delay after the match) the head must not turn: a clear
      turn either way then fails ("moved before the prompt");
    * the turn counts when the yaw differs from the baseline by at least
      :data:`TURN_DELTA` in the asked direction on :data:`HOLD_FRAMES` consecutive frames
      spanning :data:`HOLD_SECONDS` or more;
    * the same change the other way fails at once (a clip that swings both ways would
      otherwise always find the asked side), as does a turn completed sooner than
      :data:`MIN_REACTION` after the prompt (no one reads a prompt and turns that fast: the
      movement began before it, as in a replay already turning);
    * no turn within the window (``liveness.challenge_seconds``, on the frames' own
      timestamps) fails.

The same face (:class:`ChallengeRun`)
    The challenge follows the face that matched: on each frame, the face whose box continues
    the last one (:data:`TRACK_MIN_IOU`, else the nearest centre within half a face), never
    another face of the frame; losing it for more than :data:`MAX_LOST` frames fails, and
    the face that completes the turn must still be the matched person (embedding distance to
    the matched face's mean embedding at most :data:`SAME_PERSON_DISTANCE`). So a photo
    cannot supply the match while a live person beside it turns.

The blink (:class:`Blink`)
    The other kind of draw: "Blink twice". It gets the same tracked face (and the frame) on
    each update and runs the face mesh (:mod:`faceunlock.engine.mesh`) on that face only,
    only while the challenge runs (the frames from the match to the decision). Per frame the
    eye aspect ratio (EAR); the open level is the 90th percentile of the EARs seen so far
    (the frames before the prompt first). A blink is an open frame (at least
    :data:`~faceunlock.engine.mesh.BLINK_OPEN` of the open level), then a frame below
    :data:`~faceunlock.engine.mesh.BLINK_DIP` of it, then open again (at least
    :data:`BLINK_REOPEN` of it: an open eye's EAR wanders, and the 90th percentile sits at
    the top of it, so 0.85 would merge two quick blinks into one). Only blinks whose
    closing comes :data:`BLINK_REACTION` or more after the prompt count; blinks before
    (people blink every few seconds) neither fail nor count. Two such blinks, the second
    closing within :data:`BLINK_PAIR_GAP` of the first reopening, within the window: passed.
    A single natural blink in the window is common; two in quick succession are not, so
    "twice" is what separates an asked blink from a recorded one.

Which kind (:func:`draw_challenge`)
    Drawn uniformly among :data:`KINDS` (turn to the left, turn to the right, blink), by the
    same randomness as the moment of the prompt.
"""

from __future__ import annotations

import enum
import random
import secrets
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from faceunlock.config import CHALLENGE_MAX_DELAY
from faceunlock.engine import mesh as _mesh
from faceunlock.errors import InputError

Box = tuple[float, float, float, float]

#: what the user is told when a head-turn challenge fails
CHALLENGE_MESSAGE = ("Face not accepted: you did not turn your head as asked. "
                     "Type your password.")
#: what the user is told when a blink challenge fails
BLINK_MESSAGE = "Face not accepted: you did not blink as asked. Type your password."
BLINK_PROMPT = "Blink twice"
#: the kinds :func:`draw_challenge` chooses among by default
KINDS = ("turn-left", "turn-right", "blink")
#: a blink counts when its eyes close this many seconds or more after the prompt
BLINK_REACTION = 0.2
#: blinks asked for
BLINK_COUNT = 2
#: ... the next one closing within this many seconds of the previous one reopening
BLINK_PAIR_GAP = 1.5
#: a closed eye counts as reopened (the blink done) at this share of the open level: lower
#: than the open share that starts the count (mesh.BLINK_OPEN, 0.85), because a steadily
#: open eye reads down to ~0.75 of the 90th-percentile open level (the man's clip: 0.72-1.0;
#: benchmarks/active_frr.py lost 27 of 100 simulated double blinks at 0.85, the eyes never
#: "reopening" between them); still above the closing dip (mesh.BLINK_DIP, 0.65)
BLINK_REOPEN = 0.75
#: the open level needs this many EAR readings before a closure can count
BLINK_MIN_READINGS = 3
#: a mesh below this face presence gives no EAR reading for the frame
MESH_MIN_PRESENCE = 0.5
#: the turn directions (the user's own left and right)
DIRECTIONS = ("left", "right")
PROMPTS = {
    "left": "Turn your head slowly to your left",
    "right": "Turn your head slowly to your right",
}
#: default window after the prompt (seconds), the ``liveness.challenge_seconds`` default
WINDOW_SECONDS = 4.0
#: the prompt comes a uniformly random 0 to this many seconds after the match
MAX_DELAY = CHALLENGE_MAX_DELAY
#: a turn: this change of yaw (nose offset / inter-ocular distance) from the baseline, roughly
#: 15 degrees (the clips' frame-to-frame noise is ~0.03)
TURN_DELTA = 0.15
#: ... on this many consecutive frames ...
HOLD_FRAMES = 2
#: ... spanning at least this long, first to last (seconds): 2 frames at the clips' 12.5
#: fps (0.08 s apart), 4 at 30 fps, where 2 frames (33 ms) let a head wandering while it
#: waits read as a turn (benchmarks/active_frr.py --fps 30)
HOLD_SECONDS = 0.075
#: a turn completed sooner than this after the prompt began before it (seconds)
MIN_REACTION = 0.25
#: tracking: a face continues the last box when their IoU reaches this ...
TRACK_MIN_IOU = 0.3
#: ... or its centre is within this many face sizes of the last centre
TRACK_MAX_SHIFT = 0.5
#: frames in a row without the tracked face before the challenge fails
MAX_LOST = 3
#: the face that completes the turn: Euclidean distance of its (raw) embedding to the mean
#: embedding of the matched face at most this (dlib's same-person distance is 0.6; a turned
#: head of the owner stays well within it on the clips, another person does not)
SAME_PERSON_DISTANCE = 0.6


class State(enum.Enum):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


class Face(Protocol):
    """What a challenge reads of a face observation (:class:`~faceunlock.engine.pipeline.
    FaceObservation`): box (left, top, right, bottom); landmarks (5, 2) float32 (x, y);
    embedding (128,) float32."""

    @property
    def box(self) -> Box: ...

    @property
    def landmarks(self) -> np.ndarray: ...

    @property
    def embedding(self) -> np.ndarray: ...


class Challenge(Protocol):
    """One active challenge. ``kind``: its name (``head-turn``, ``blink``); ``action``: the
    word for what is asked (``turn``, ``blink``); ``prompt``: the words the user is shown
    ``delay`` seconds after :meth:`start`; ``message``: the user's message when it fails;
    ``seconds``: its window after the prompt; ``reason``: why it failed (empty until then).

    :meth:`start` gets the matched face on the frames of the match (oldest first) and the
    match's time; :meth:`update` then gets each later frame's timestamp, the tracked
    face (None when it was not found on that frame) and the frame (RGB; None when it was
    too dark to look at) and returns the state; once it is not PENDING it stays so."""

    kind: str
    action: str
    message: str
    prompt: str
    delay: float
    seconds: float
    reason: str

    def start(self, baseline: Sequence[Face], t: float) -> None: ...

    def update(self, t: float, face: Face | None, image: np.ndarray | None = None
               ) -> State: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Pose:
    """yaw: nose offset along the eye axis / inter-ocular distance, positive = the nose to
    the image's right (the user's left); pitch: the offset across it / inter-ocular distance
    (positive, larger when the head tips down); iod: inter-ocular distance (pixels)."""

    yaw: float
    pitch: float
    iod: float


def head_pose(landmarks: np.ndarray) -> Pose:
    """The yaw estimate of the five engine landmarks ((5, 2) x, y: the two corners of one
    eye, the two of the other, the nose base). Raises InputError on a wrong shape or eyes
    that coincide."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (5, 2) or not np.all(np.isfinite(lm)):
        raise InputError(f"head pose: expected (5, 2) finite landmarks, got {lm.shape}")
    eye_a, eye_b = (lm[0] + lm[1]) / 2.0, (lm[2] + lm[3]) / 2.0
    axis = eye_b - eye_a
    iod = float(np.hypot(axis[0], axis[1]))
    if iod < 1e-6:
        raise InputError("head pose: the two eyes are at the same place")
    u = axis / iod
    v = np.array([-u[1], u[0]])
    nose = lm[4] - (eye_a + eye_b) / 2.0
    if float(nose @ v) < 0:  # v points from the eyes towards the nose (down the face)
        v = -v
    if u[0] * v[1] - u[1] * v[0] < 0:  # u to the image's right of an upright face
        u = -u
    return Pose(float(nose @ u) / iod, float(nose @ v) / iod, iod)


class HeadTurn:
    """Turn the head to ``direction`` (``left`` or ``right``, the user's own) within
    ``seconds`` of the prompt; see the module docstring for the rule."""

    kind = "head-turn"
    action = "turn"
    message = CHALLENGE_MESSAGE

    def __init__(self, direction: str, seconds: float = WINDOW_SECONDS,
                 delta: float = TURN_DELTA, delay: float = 0.0) -> None:
        if not 0.0 <= delay <= 60.0:
            raise InputError(f"head turn: delay must be 0-60 s, got {delay}")
        if direction not in DIRECTIONS:
            raise InputError(f"head turn: direction must be one of {', '.join(DIRECTIONS)}, "
                             f"got {direction!r}")
        if not seconds > 0 or not delta > 0:
            raise InputError(f"head turn: seconds and delta must be positive, got {seconds}, "
                             f"{delta}")
        self.direction = direction
        self.delay = float(delay)
        self.seconds = float(seconds)
        self.delta = float(delta)
        self.prompt = PROMPTS[direction]
        self.reason = ""
        self.state = State.PENDING
        self.baseline = float("nan")
        self.t0 = 0.0
        #: (seconds after the prompt, yaw change or None when no face) of each update
        self.trace: list[tuple[float, float | None]] = []
        self._run = 0  # consecutive frames beyond the threshold, signed by side
        self._run_t = 0.0  # the timestamp of the run's first frame
        self._sign = 1.0 if direction == "left" else -1.0

    def start(self, baseline: Sequence[Face], t: float) -> None:
        if not baseline:
            raise InputError("head turn: no face to take the baseline from")
        self.baseline = statistics.median(head_pose(f.landmarks).yaw for f in baseline)
        self.t0 = float(t)

    def _fail(self, reason: str) -> State:
        self.state, self.reason = State.FAILED, reason
        return self.state

    def update(self, t: float, face: Face | None, image: np.ndarray | None = None) -> State:
        if self.state is not State.PENDING:
            return self.state
        dt = float(t) - self.t0 - self.delay  # seconds since the prompt (< 0: before it)
        if face is None:
            self.trace.append((dt, None))
            self._run = 0
        else:
            change = (head_pose(face.landmarks).yaw - self.baseline) * self._sign
            self.trace.append((dt, change))
            side = 1 if change >= self.delta else -1 if change <= -self.delta else 0
            if side == 0 or (self._run > 0) != (side > 0):
                self._run, self._run_t = side, float(t)
            else:
                self._run += side
            if abs(self._run) >= HOLD_FRAMES and float(t) - self._run_t >= HOLD_SECONDS:
                if dt < 0:
                    return self._fail("turned before the prompt")
                if self._run < 0:
                    return self._fail("turned the other way")
                if dt < MIN_REACTION:
                    return self._fail(f"turned too soon after the prompt ({dt:.2f} s): it "
                                      "began before it")
                self.state = State.PASSED
                return self.state
        if dt > self.seconds:
            return self._fail(f"no turn within {self.seconds:g} s")
        return self.state

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "direction": self.direction,
            "delay_s": round(self.delay, 3),
            "prompt": self.prompt,
            "state": self.state.value,
            "reason": self.reason,
            "baseline_yaw": None if not np.isfinite(self.baseline) else round(self.baseline, 4),
            "trace": [[round(dt, 3), None if c is None else round(c, 4)]
                      for dt, c in self.trace],
        }


def mesh_points(image: np.ndarray, face: Face) -> np.ndarray | None:
    """The face mesh's (468, 3) points of ``face`` in ``image`` (the per-process
    :func:`~faceunlock.engine.mesh.get_face_mesh`, cropped from the face's 5 landmarks);
    None when the mesh sees no face there (presence below MESH_MIN_PRESENCE)."""
    res = _mesh.get_face_mesh().mesh(image, landmarks5=face.landmarks)
    return res.points if res.presence >= MESH_MIN_PRESENCE else None


#: where a :class:`Blink` gets a face's mesh points: (frame, tracked face) → points or None
PointsFn = Callable[[np.ndarray, Face], "np.ndarray | None"]


class Blink:
    """Blink twice within ``seconds`` of the prompt; see the module docstring for the rule.
    ``points``: the mesh (default :func:`mesh_points`; tests may wrap it)."""

    kind = "blink"
    action = "blink"
    message = BLINK_MESSAGE

    def __init__(self, seconds: float = WINDOW_SECONDS, delay: float = 0.0,
                 points: PointsFn | None = None, count: int = BLINK_COUNT) -> None:
        if not 0.0 <= delay <= 60.0:
            raise InputError(f"blink: delay must be 0-60 s, got {delay}")
        if not seconds > 0:
            raise InputError(f"blink: seconds must be positive, got {seconds}")
        if count < 1:
            raise InputError(f"blink: count must be at least 1, got {count}")
        self.delay = float(delay)
        self.seconds = float(seconds)
        self.count = int(count)
        self.points = points if points is not None else mesh_points
        self.prompt = {1: "Blink once", 2: BLINK_PROMPT}.get(count, f"Blink {count} times")
        self.reason = ""
        self.state = State.PENDING
        self.t0 = 0.0
        #: (seconds after the prompt, EAR or None when no reading) of each update
        self.trace: list[tuple[float, float | None]] = []
        #: seconds after the prompt at which each counted blink closed
        self.blinks: list[float] = []
        self._ears: list[float] = []
        self._phase = 0  # 0: not seen open yet, 1: open, 2: closed (a blink under way)
        self._closed_at = 0.0
        self._reopened_at = float("-inf")

    def start(self, baseline: Sequence[Face], t: float) -> None:
        if not baseline:
            raise InputError("blink: no matched face")
        self.t0 = float(t)

    def _fail(self, reason: str) -> State:
        self.state, self.reason = State.FAILED, reason
        return self.state

    def open_level(self) -> float:
        """The open EAR so far: the 90th percentile of the readings (nan before any)."""
        return float(np.percentile(self._ears, 90)) if self._ears else float("nan")

    def update(self, t: float, face: Face | None, image: np.ndarray | None = None) -> State:
        if self.state is not State.PENDING:
            return self.state
        dt = float(t) - self.t0 - self.delay  # seconds since the prompt (< 0: before it)
        pts = None if face is None or image is None else self.points(image, face)
        ear = None if pts is None else _mesh.eye_aspect_ratio(pts)
        self.trace.append((dt, ear))
        if ear is not None:
            self._ears.append(ear)
            if len(self._ears) >= BLINK_MIN_READINGS:
                self._step(dt, ear / max(self.open_level(), 1e-6))
            if self.state is not State.PENDING:
                return self.state
        if dt > self.seconds:
            got = len(self.blinks)
            return self._fail(f"no blink within {self.seconds:g} s" if got == 0 else
                              f"blinked {got} of {self.count} times within {self.seconds:g} s")
        return self.state

    def _step(self, dt: float, r: float) -> None:
        if self._phase == 0:
            if r >= _mesh.BLINK_OPEN:
                self._phase = 1
        elif self._phase == 1:
            if r < _mesh.BLINK_DIP:
                self._phase, self._closed_at = 2, dt
        elif r >= BLINK_REOPEN:  # reopened: one blink done
            self._phase = 1
            if self._closed_at >= BLINK_REACTION:  # before the prompt: neither fails nor counts
                if self.blinks and self._closed_at - self._reopened_at > BLINK_PAIR_GAP:
                    self.blinks = []  # too far apart: this one starts a new series
                self.blinks.append(self._closed_at)
                self._reopened_at = dt
                if len(self.blinks) >= self.count and dt <= self.seconds:
                    self.state = State.PASSED

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "delay_s": round(self.delay, 3),
            "prompt": self.prompt,
            "state": self.state.value,
            "reason": self.reason,
            "open_ear": None if not self._ears else round(self.open_level(), 4),
            "blinks_s": [round(b, 3) for b in self.blinks],
            "trace": [[round(dt, 3), None if e is None else round(e, 4)]
                      for dt, e in self.trace],
        }


def production_rng() -> random.Random:
    """The draw's randomness outside tests: the OS's (:class:`secrets.SystemRandom`)."""
    return secrets.SystemRandom()


def parse_kinds(text: str) -> tuple[str, ...]:
    """The kinds of a ``liveness.challenges`` value: ``turn`` (both sides) and/or ``blink``,
    comma-separated. Raises InputError on anything else or on none."""
    out: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        if word == "turn":
            out += ["turn-left", "turn-right"]
        elif word in KINDS:
            out.append(word)
        elif word:
            raise InputError(f"liveness.challenges: {word!r} is not a challenge (turn, blink)")
    if not out:
        raise InputError("liveness.challenges: name at least one of turn, blink")
    return tuple(dict.fromkeys(out))


def draw_challenge(rng: random.Random | None = None,
                   seconds: float = WINDOW_SECONDS,
                   kinds: Sequence[str] = KINDS) -> Challenge:
    """A new randomly chosen challenge: one of ``kinds`` (default: a head turn to the left,
    one to the right, or a blink, equally likely), prompted a uniformly random 0 to
    MAX_DELAY s after the match, drawn from ``rng`` (default: :func:`production_rng`)."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise InputError(f"challenge kinds must be among {', '.join(KINDS)}, got {list(kinds)}")
    r = rng if rng is not None else production_rng()
    kind = r.choice(list(kinds))
    delay = r.uniform(0.0, MAX_DELAY)
    if kind == "blink":
        return Blink(seconds, delay=delay)
    return HeadTurn(kind.removeprefix("turn-"), seconds, delay=delay)


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    return inter / union if union > 0 else 0.0


def follow(last: Box, faces: Sequence[Face]) -> Face | None:
    """The face of ``faces`` that continues the track ending at box ``last``: the highest
    IoU at least TRACK_MIN_IOU, else the nearest centre within TRACK_MAX_SHIFT face sizes;
    None when no face does."""
    if not faces:
        return None
    best = max(faces, key=lambda f: _iou(last, f.box))
    if _iou(last, best.box) >= TRACK_MIN_IOU:
        return best
    size = max(last[2] - last[0], last[3] - last[1], 1.0)
    cx, cy = (last[0] + last[2]) / 2.0, (last[1] + last[3]) / 2.0

    def shift(f: Face) -> float:
        return float(np.hypot((f.box[0] + f.box[2]) / 2.0 - cx, (f.box[1] + f.box[3]) / 2.0 - cy))

    near = min(faces, key=shift)
    return near if shift(near) <= TRACK_MAX_SHIFT * size else None


@dataclass
class ChallengeRun:
    """One challenge on one attempt, tied to the face that matched. ``matched``: that face on
    the frames before the prompt (oldest first); ``t``: the prompt's frame timestamp.

    :meth:`feed` takes every later frame's timestamp, all its faces and the frame, follows
    the matched face (:func:`follow`), and hands it (and the frame) to the challenge; the
    state. :meth:`prompt_due`
    says, once, when the prompt is to be shown. ``ms``: time spent in :meth:`feed` (the
    challenge's own cost per frame, beside the pipeline's)."""

    challenge: Challenge
    matched: Sequence[Face]
    t: float
    same_person: float = SAME_PERSON_DISTANCE
    state: State = State.PENDING
    frames: int = 0
    ms: list[float] = field(default_factory=list)
    reason: str = ""
    prompted: bool = False

    def __post_init__(self) -> None:
        if not self.matched:
            raise InputError("challenge: no matched face to follow")
        self._box: Box = tuple(map(float, self.matched[-1].box))  # type: ignore[assignment]
        self._ref = np.mean([np.asarray(f.embedding, np.float64) for f in self.matched], axis=0)
        self._lost = 0
        self.challenge.start(self.matched, self.t)

    def feed(self, t: float, faces: Sequence[Face], image: np.ndarray | None = None
             ) -> State:
        if self.state is not State.PENDING:
            return self.state
        t0 = time.perf_counter()
        try:
            self.frames += 1
            face = follow(self._box, faces)
            if face is None:
                self._lost += 1
                if self._lost > MAX_LOST:
                    return self._end(State.FAILED, f"lost the face for {self._lost} frames")
            else:
                self._lost = 0
                self._box = tuple(map(float, face.box))  # type: ignore[assignment]
            st = self.challenge.update(t, face, image)
            if st is State.PASSED and face is not None:
                d = float(np.linalg.norm(np.asarray(face.embedding, np.float64) - self._ref))
                if d > self.same_person:
                    return self._end(State.FAILED, f"the face that did the "
                                     f"{self.challenge.action} is not the one that matched "
                                     f"(distance {d:.3f})")
            return self._end(st, self.challenge.reason)
        finally:
            self.ms.append((time.perf_counter() - t0) * 1e3)

    @property
    def challenge_seconds(self) -> float:
        """From the match to the end of the window: the delay plus the window."""
        return float(self.challenge.delay + self.challenge.seconds)

    def prompt_due(self, t: float) -> bool:
        """True once: the first time ``t`` (a frame's timestamp) reaches the prompt's moment
        while the challenge is pending."""
        if self.prompted or self.state is not State.PENDING \
                or t < self.t + self.challenge.delay:
            return False
        self.prompted = True
        return True

    def expire(self, reason: str) -> None:
        """End a pending challenge as failed (the window ran out on the wall clock, or the
        frames ended)."""
        if self.state is State.PENDING:
            self._end(State.FAILED, reason)

    def _end(self, st: State, reason: str) -> State:
        self.state = st
        if st is State.FAILED:
            self.reason = reason
        return st

    def to_json(self) -> dict[str, Any]:
        return {
            **self.challenge.to_json(),
            "state": self.state.value,
            "reason": self.reason,
            "frames": self.frames,
            "ms_per_frame": round(float(np.mean(self.ms)), 3) if self.ms else 0.0,
        }

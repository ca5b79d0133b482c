"""Authentication: read frames until accept, reject or timeout.

Decision rule
    Every frame is scored by the smallest distance from any face in it to any anchor. Faces
    that do not match never count for anything, so several faces in the frame cannot help an
    impostor: only a face within the threshold of the enrolled anchors does. The attempt
    accepts when ``k`` of the last ``n`` frames that showed a face matched.

Liveness
    With a :class:`~faceunlock.engine.liveness.Liveness` stage (``liveness.level`` passive or
    active), the moment the ``k``-of-``n`` rule would accept, the stage judges the matched
    frames of the window: on each, the face whose embedding matched (its detector box), never
    another face of the frame. An attack ends the attempt with ``PRESENTATION_ATTACK``. When
    every judged frame came from an infrared sensor (:attr:`Frame.ir_sensor`), the stage judges
    them as IR (its physical cues, not the colour model).

Active challenge
    At ``liveness.level = active``, an attempt that passed those checks does not accept yet:
    a challenge is drawn (:func:`~faceunlock.engine.challenge.draw_challenge`: a head turn to
    the left or the right, or a blink, prompted after a random delay), its prompt handed to
    ``on_prompt`` (the greeter line, the terminal, the Test dialog) when due, and the
    following frames go to a
    :class:`~faceunlock.engine.challenge.ChallengeRun` that follows the face that matched.
    Passed: OK. Failed, or no decision within the window: ``PRESENTATION_ATTACK`` with the
    challenge's ``message`` (:data:`~faceunlock.engine.challenge.CHALLENGE_MESSAGE` for a
    turn, :data:`~faceunlock.engine.challenge.BLINK_MESSAGE` for a blink). The attempt's
    ``timeout`` covers the search for a match; the challenge's window comes on top of it.
    An ``active`` attempt without ``on_prompt`` is refused (InputError): a challenge nobody
    can see would fail every time, and skipping it would weaken ``active`` to ``passive`` silently.

Rate limiting
    After ``max_failures`` failed attempts in a row, face authentication refuses (status
    ``LOCKED_OUT``) for ``lockout_seconds``; the password is unaffected. A success resets the
    counter. The counter lives in a small 0600 JSON file written atomically.

Everything here is camera-agnostic: it takes any iterable of :class:`Frame`.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from faceunlock.config import CHALLENGE_CLOCK_SLACK, AuthConfig
from faceunlock.engine.challenge import Challenge, ChallengeRun, State, parse_kinds
from faceunlock.engine.challenge import draw_challenge as _draw
from faceunlock.engine.cohort import Matcher
from faceunlock.engine.liveness import ATTACK_MESSAGE, Liveness, Verdict
from faceunlock.engine.quality import is_dark
from faceunlock.engine.sources import Frame
from faceunlock.errors import AuthStatus, InputError
from faceunlock.fileio import atomic_write_bytes


class Observer(Protocol):
    """What authentication needs from the pipeline."""

    def observe(
        self, image: np.ndarray, select: Any = ..., fallback_center: bool = ...,
        track: bool = ...,
    ) -> list[Any]: ...


@dataclass(frozen=True)
class AuthParams:
    """The attempt's rules; the defaults are the [auth] config keys' (one default each)."""

    timeout: float = AuthConfig.timeout
    k: int = AuthConfig.k
    n: int = AuthConfig.n
    dark_level: int = AuthConfig.dark_level
    dark_fraction: float = AuthConfig.dark_fraction

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise InputError(f"auth: need 1 <= k <= n, got k={self.k}, n={self.n}")
        if self.timeout <= 0:
            raise InputError(f"auth: timeout must be positive, got {self.timeout}")


@dataclass(frozen=True)
class FrameResult:
    """index: source frame index; faces: faces found; distance: best score (inf: no face);
    match: distance <= threshold; dark: skipped as too dark; ms: processing time."""

    index: int
    faces: int
    distance: float
    match: bool
    dark: bool
    ms: float

    def to_json(self) -> dict[str, Any]:
        d = None if not np.isfinite(self.distance) else round(self.distance, 4)
        return {
            "frame": self.index,
            "faces": self.faces,
            "distance": d,
            "match": self.match,
            "dark": self.dark,
            "ms": round(self.ms, 2),
        }


@dataclass
class AuthResult:
    status: AuthStatus
    message: str
    threshold: float
    elapsed: float = 0.0
    frames: list[FrameResult] = field(default_factory=list)
    #: the liveness verdict, when the stage ran (at the moment the attempt would accept)
    liveness: Verdict | None = None
    #: the active challenge, when one was given (``liveness.level = active``)
    challenge: ChallengeRun | None = None
    #: seconds from the match to the challenge's decision, the random delay before the
    #: prompt included (wall clock; 0 without one)
    challenge_elapsed: float = 0.0

    @property
    def best_distance(self) -> float:
        return min((f.distance for f in self.frames), default=float("inf"))

    def to_json(self) -> dict[str, Any]:
        best = self.best_distance
        return {
            "status": self.status.name.lower(),
            "code": int(self.status),
            "message": self.message,
            "threshold": round(self.threshold, 4),
            "elapsed_s": round(self.elapsed, 3),
            "frames": len(self.frames),
            "face_frames": sum(1 for f in self.frames if f.faces),
            "dark_frames": sum(1 for f in self.frames if f.dark),
            "best_distance": None if not np.isfinite(best) else round(best, 4),
            "liveness": None if self.liveness is None else self.liveness.to_json(),
            "challenge": None if self.challenge is None else {
                **self.challenge.to_json(), "elapsed_s": round(self.challenge_elapsed, 3)},
        }


MESSAGES = {
    AuthStatus.OK: "Face recognised",
    AuthStatus.NO_MATCH: "Face not recognised, type your password",
    AuthStatus.TIMEOUT: "No face seen, type your password",
    AuthStatus.TOO_DARK: "Too dark to see your face, type your password",
    AuthStatus.ABORTED: "Face check cancelled",
    AuthStatus.LOCKED_OUT: "Face unlock paused after failed attempts, type your password",
    AuthStatus.PRESENTATION_ATTACK: ATTACK_MESSAGE,
}


def as_matcher(anchors: np.ndarray | Matcher) -> Matcher:
    """A :class:`Matcher`; bare anchors (M, D) are scored by raw distance."""
    return anchors if isinstance(anchors, Matcher) else Matcher(anchors)


def score_frame(
    pipe: Observer, image: np.ndarray, anchors: np.ndarray | Matcher
) -> tuple[int, float]:
    """(faces found, smallest score of any face against the template; inf when no face).

    ``anchors``: a :class:`Matcher` (raw or cohort-normalised scores) or bare anchors
    (M, D) float32, scored by raw distance."""
    faces, score, _ = best_face(pipe, image, anchors)
    return faces, score


def best_face(
    pipe: Observer, image: np.ndarray, anchors: np.ndarray | Matcher
) -> tuple[int, float, Any]:
    """:func:`score_frame` plus the observation of the face with the smallest score (the one
    liveness judges; None when no face)."""
    obs, score, face = _observe_best(pipe, image, as_matcher(anchors))
    return len(obs), score, face


def _observe_best(pipe: Observer, image: np.ndarray, a: Matcher) -> tuple[list[Any], float, Any]:
    """Every face of the frame, the smallest score and the face that has it."""
    obs = pipe.observe(image, select="all", track=True)
    if not obs:
        return [], float("inf"), None
    scores = a.scores(np.stack([o.embedding for o in obs]))
    i = int(np.argmin(scores))
    return list(obs), float(scores[i]), obs[i]


def authenticate(
    pipe: Observer,
    anchors: np.ndarray | Matcher,
    threshold: float,
    frames: Iterable[Frame],
    params: AuthParams = AuthParams(),
    *,
    clock: Callable[[], float] = time.monotonic,
    on_frame: Callable[[FrameResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    liveness: Liveness | None = None,
    on_prompt: Callable[[str], None] | None = None,
    challenge: Callable[[], Challenge] | None = None,
) -> AuthResult:
    """Run one attempt over ``frames`` (stops at the timeout or when frames run out).

    anchors: the template's :class:`Matcher`, or bare (M, 128) float32 anchors (raw
    distances); ``threshold`` is on the same scale. ``liveness``: the stage that must pass
    before the attempt accepts (None or level ``off``: no liveness check). At level
    ``active``: ``on_prompt(words)`` shows the challenge's prompt (required), and
    ``challenge()`` draws it (default: :func:`~faceunlock.engine.challenge.draw_challenge`
    with the OS's randomness, the stage's window and kinds; tests pass a seeded one).
    """
    live_on = liveness is not None and liveness.params.enabled
    active = liveness is not None and liveness.params.level == "active"
    if active and on_prompt is None:
        raise InputError("liveness.level = active: this attempt has no way to show the "
                         "challenge's prompt")
    if active and challenge is None:
        assert liveness is not None
        seconds = liveness.params.challenge_seconds
        kinds = parse_kinds(liveness.params.challenges)

        def challenge() -> Challenge:
            return _draw(None, seconds, kinds)
    a = as_matcher(anchors)
    reset = getattr(pipe, "reset_tracking", None)
    if reset is not None:
        reset()
    start = clock()
    window: deque[bool] = deque(maxlen=params.n)
    #: beside each window entry: the frame, its best face and whether the frame came from an
    #: infrared sensor (for liveness)
    seen: deque[tuple[np.ndarray, Any, bool]] = deque(maxlen=params.n)
    res = AuthResult(AuthStatus.TIMEOUT, "", float(threshold))
    run: ChallengeRun | None = None
    started = 0.0  # clock() when the challenge began (the match)
    for frame in frames:
        if should_stop is not None and should_stop():
            res.status = AuthStatus.ABORTED
            break
        t0 = time.perf_counter()
        if is_dark(frame.image, dark_level=params.dark_level, dark_fraction=params.dark_fraction):
            fr = FrameResult(frame.index, 0, float("inf"), False, True, 0.0)
            if run is not None:
                run.feed(frame.timestamp, [], None)
        else:
            obs, dist, face = _observe_best(pipe, frame.image, a)
            faces = len(obs)
            match = faces > 0 and dist <= threshold
            if run is not None:
                run.feed(frame.timestamp, obs, frame.image)
                if run.prompt_due(frame.timestamp):
                    assert on_prompt is not None
                    on_prompt(run.challenge.prompt)
            else:
                if faces:
                    window.append(match)
                    if live_on:
                        seen.append((frame.image, face, frame.ir_sensor))
                if live_on and match and sum(window) >= params.k:
                    assert liveness is not None
                    chosen = [s for s, m in zip(seen, window, strict=True) if m]
                    res.liveness = liveness.judge(
                        [(im, f.box) for im, f, _ in chosen],
                        infrared=all(ir for _, _, ir in chosen),
                    )
            fr = FrameResult(
                frame.index, faces, dist, match, False, (time.perf_counter() - t0) * 1e3
            )
        res.frames.append(fr)
        if on_frame is not None:
            on_frame(fr)
        if run is not None:
            if run.state is State.PENDING and clock() - started > run.challenge_seconds \
                    + CHALLENGE_CLOCK_SLACK:
                run.expire(f"no {run.challenge.action} within the window (wall clock)")
            if run.state is not State.PENDING:
                res.status = (AuthStatus.OK if run.state is State.PASSED
                              else AuthStatus.PRESENTATION_ATTACK)
                break
            continue
        if sum(window) >= params.k:
            live = res.liveness is None or res.liveness.live
            if live and active:
                assert challenge is not None and on_prompt is not None
                matched = [f for (_, f, _), m in zip(seen, window, strict=True) if m]
                run = ChallengeRun(challenge(), matched, frame.timestamp)
                res.challenge = run
                started = clock()
                if run.prompt_due(frame.timestamp):
                    on_prompt(run.challenge.prompt)
                continue
            res.status = AuthStatus.OK if live else AuthStatus.PRESENTATION_ATTACK
            break
        if clock() - start >= params.timeout:
            break
    res.elapsed = clock() - start
    if run is not None:
        res.challenge_elapsed = clock() - started
        if run.state is State.PENDING and res.status != AuthStatus.ABORTED:
            run.expire(f"the frames ended before the {run.challenge.action}")
            res.status = AuthStatus.PRESENTATION_ATTACK
    if res.status not in (AuthStatus.OK, AuthStatus.ABORTED, AuthStatus.PRESENTATION_ATTACK):
        if any(f.faces for f in res.frames):
            res.status = AuthStatus.NO_MATCH
        elif res.frames and all(f.dark for f in res.frames):
            res.status = AuthStatus.TOO_DARK
        else:
            res.status = AuthStatus.TIMEOUT
    res.message = MESSAGES.get(res.status, res.status.name)
    if res.status == AuthStatus.PRESENTATION_ATTACK and run is not None \
            and run.state is State.FAILED:
        res.message = run.challenge.message
    elif res.status == AuthStatus.PRESENTATION_ATTACK and res.liveness is not None \
            and not res.liveness.live:
        res.message = res.liveness.message
    return res


@dataclass(frozen=True)
class Charge:
    """A failure counted ahead of an attempt: the counter's state before and after."""

    before: dict[str, float]
    after: dict[str, float]


class FailureCounter:
    """Consecutive-failure counter with a lock-out window, persisted in a 0600 JSON file."""

    def __init__(
        self,
        path: Path,
        max_failures: int = 5,
        lockout_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.clock = clock

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
            return {
                "failures": float(data.get("failures", 0)),
                "locked_until": float(data.get("locked_until", 0.0)),
            }
        except (OSError, ValueError, TypeError, AttributeError):
            return {"failures": 0.0, "locked_until": 0.0}

    def _write(self, state: dict[str, float]) -> None:
        atomic_write_bytes(self.path, json.dumps(state).encode(), mode=0o600)

    def locked_for(self) -> float:
        """Seconds of lock-out left (0 when face auth is allowed)."""
        return max(0.0, self._read()["locked_until"] - self.clock())

    def record(self, success: bool) -> None:
        if success:
            if self.path.exists():
                self._write({"failures": 0, "locked_until": 0.0})
            return
        self._fail()

    def _fail(self) -> tuple[dict[str, float], dict[str, float]]:
        before = self._read()
        st = dict(before)
        st["failures"] += 1
        if st["failures"] >= self.max_failures:
            st["locked_until"] = self.clock() + self.lockout_seconds
            st["failures"] = 0
        self._write(st)
        return before, st

    def charge(self) -> Charge:
        """Count a failure now, before the attempt looks at a single face, so that nothing
        that ends the attempt (a signal, a timeout, SIGKILL) escapes the count. Then
        :meth:`record` ``(True)`` forgives it on success, and :meth:`refund` takes it back
        when the attempt compared no face at all."""
        before, after = self._fail()
        return Charge(before, after)

    def refund(self, charge: Charge) -> None:
        """Undo ``charge`` (the attempt compared no face). Only when the file still holds what
        the charge wrote: a concurrent attempt's count is never taken back."""
        if self.path.exists() and self._read() == charge.after:
            if charge.before == {"failures": 0.0, "locked_until": 0.0}:
                self.path.unlink(missing_ok=True)
            else:
                self._write(charge.before)

    @property
    def failures(self) -> int:
        return int(self._read()["failures"])


def save_snapshot(directory: Path, image: np.ndarray, keep: int = 20) -> Path:
    """Write a failed attempt's frame as a 0600 JPEG; keep only the newest ``keep``."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    # zero-padded nanoseconds: names sort in time order, so pruning drops the oldest
    name = f"{time.time_ns():020d}.jpg"
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError("snapshot could not be encoded")
    path = directory / name
    atomic_write_bytes(path, buf.tobytes(), mode=0o600)
    for old in sorted(directory.glob("*.jpg"))[:-keep]:
        old.unlink(missing_ok=True)
    return path

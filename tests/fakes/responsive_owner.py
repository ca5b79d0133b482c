"""A simulated owner who answers the active challenge, built from the real clip frames.

Nothing here is a real user: the clips are recordings that do not respond to prompts. What
the "user" shows is chosen, frame by frame, from the challenge actually drawn and from the
moment its prompt was actually shown (:class:`SimulatedAttempt` wraps the attempt's
``challenge`` callable and its ``on_prompt``):

* until the prompt plus a reaction time (drawn per attempt; an assumption, default uniform
  0.5-1.2 s): the owner's near-frontal frames (|yaw| <= :data:`FRONTAL_YAW`), distinct
  frames played forwards and backwards (their own small jitter), no turn;
* a head turn: a run of the clip's own consecutive frames (forwards or backwards in time)
  from a frontal frame towards the asked side (the user's left = positive yaw = the nose to
  the image's right, as in :mod:`faceunlock.engine.challenge`), one clip frame per 1/12.5 s
  (her own speed in the clip), up to the most turned frame of the run, then held there (the
  frames within :data:`HOLD_BAND` of it, back and forth);
* a blink: the frontal frames go on, and twice the eyes are painted shut
  (:func:`~tests.fakes.clip_material.paint_closed`, real pixels the face mesh reads as
  closed on the man's frontal face) for ``closed_s`` (default 0.16 s: 2 frames at 12.5
  fps), the second closing a drawn 0.3-0.6 s after the first.

The frames come at the clips' 12.5 fps, or at another rate (30) by repeating the clip
frame of the moment, each sample with tiny Gaussian noise (``noise`` grey levels) so no two
frames are bit-identical. The timestamps are the simulated camera's; :meth:`SimulatedAttempt.
clock` is the attempt's clock (the last frame's timestamp), so the run is as if in real
time however fast the machine is.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceunlock.config import Config
from faceunlock.engine import mesh as M
from faceunlock.engine.challenge import Blink, Challenge, HeadTurn, head_pose
from faceunlock.engine.cohort import Matcher
from faceunlock.engine.pipeline import Pipeline
from faceunlock.engine.sources import Frame
from faceunlock.errors import InputError
from tests.fakes.clip_material import FEMALE, MALE, clip_frames, paint_closed, png_folder

#: the clips' frame rate
CLIP_FPS = 12.5
#: a frame is near-frontal when its yaw is within this of 0 (about 10 degrees)
FRONTAL_YAW = 0.1
#: a turn run is kept when it reaches this yaw on the asked side (from facing the camera:
#: 1.7 times the challenge's 0.15 change, well past it)
FAR_TURN = 0.25
#: a run ends when the yaw falls back this much from its most turned frame so far
TURN_BACK = 0.05
#: held frames: those of the run within this of its most turned yaw
HOLD_BAND = 0.08
#: the reaction time after the prompt (seconds, uniform): an assumption, not a measurement
REACTION = (0.5, 1.2)
#: the second blink closes this many seconds after the first closed (uniform)
BLINK_GAP = (0.3, 0.6)
#: the eyes stay closed this long per blink (2 frames at 12.5 fps)
CLOSED_S = 0.16


@dataclass
class Owner:
    """One owner's material: ``frames`` the probe frames (RGB, never used for enrolment),
    ``yaws`` their yaw (nan where no face), ``frontal`` the near-frontal indices in the
    order they are shown (forwards then backwards), ``turns`` per user side the runs of
    indices from frontal to most turned (empty: this owner cannot be asked to turn),
    ``holds`` per side and run the indices held, ``painted`` index -> the frame with the eyes
    painted shut (empty: cannot be asked to blink), ``matcher`` and ``threshold`` the
    enrolled template's."""

    name: str
    kinds: str
    frames: list[np.ndarray]
    yaws: list[float]
    frontal: list[int]
    turns: dict[str, list[list[int]]]
    holds: dict[str, list[list[int]]]
    painted: dict[int, np.ndarray]
    matcher: Matcher
    threshold: float


def yaws_of(pipe: Pipeline, frames: Sequence[np.ndarray]) -> list[float]:
    """The yaw (:func:`~faceunlock.engine.challenge.head_pose`) of the largest face of each
    frame, tracked as the attempt tracks; nan where no face."""
    pipe.reset_tracking()
    out = []
    for im in frames:
        obs = pipe.observe(im, select="largest", track=True)
        out.append(head_pose(obs[0].landmarks).yaw if obs else float("nan"))
    return out


def turn_runs(yaws: Sequence[float], side: str) -> list[list[int]]:
    """Runs of consecutive clip indices (forwards or backwards in time) starting next to a
    near-frontal frame, moving towards ``side`` (``left``: yaw rising) until the yaw falls
    back :data:`TURN_BACK` from its most turned value, ending at that most turned frame;
    only those reaching :data:`FAR_TURN` on that side."""
    s = 1.0 if side == "left" else -1.0
    runs: list[list[int]] = []
    for start, y0 in enumerate(yaws):
        if not abs(y0) <= FRONTAL_YAW:
            continue
        for step in (1, -1):
            run: list[int] = []
            best, best_at = s * y0, -1
            j = start + step
            while 0 <= j < len(yaws) and np.isfinite(yaws[j]):
                v = s * yaws[j]
                if not run and abs(yaws[j]) <= FRONTAL_YAW:
                    break  # the next frame is frontal too: another start covers it
                if v < best - TURN_BACK:
                    break
                run.append(j)
                if v > best:
                    best, best_at = v, len(run) - 1
                j += step
            if best_at >= 0 and best >= FAR_TURN:
                runs.append(run[:best_at + 1])
    return runs


def hold_frames(yaws: Sequence[float], run: Sequence[int], side: str) -> list[int]:
    """The indices of ``run`` within :data:`HOLD_BAND` of its most turned yaw (run order)."""
    s = 1.0 if side == "left" else -1.0
    peak = max(s * yaws[j] for j in run)
    return [j for j in run if s * yaws[j] >= peak - HOLD_BAND]


def _ping_pong(idx: Sequence[int]) -> list[int]:
    """[a, b, c] -> [a, b, c, b]: played in a loop, forwards then backwards."""
    seq = list(idx)
    return seq + seq[-2:0:-1]


def enrol_template(pipe: Pipeline, cfg: Config, frames: Sequence[np.ndarray]
                   ) -> tuple[Matcher, float]:
    """(matcher, threshold) of a template enrolled from ``frames`` as the clip tests enrol
    (service.enrol, unguided: the clips were not filmed to the wizard's prompts)."""
    from faceunlock.app import service
    from faceunlock.engine.sources import ImageFolderSource
    from faceunlock.engine.templates import StaticKeyProvider, TemplateStore

    with tempfile.TemporaryDirectory() as td:
        store = TemplateStore(Path(td) / "t", StaticKeyProvider(os.urandom(32)))
        out = service.enrol(store, "owner", cfg,
                            ImageFolderSource(png_folder(Path(td) / "e", list(frames))),
                            pipe=pipe, params=service.enrol_params(cfg, guided=False))
    t = out.template
    return service.matcher(t, pipe), float(t.threshold if t.threshold is not None
                                           else pipe.threshold)


def woman(pipe: Pipeline, cfg: Config, clips: Path) -> Owner:
    """The woman, enrolled from the first half of her clip; the turn owner (her second half:
    two near-frontal frames, a run to her left and one to her right)."""
    fem = clip_frames(clips / FEMALE)
    half = len(fem) // 2
    m, thr = enrol_template(pipe, cfg, fem[:half])
    probe = fem[half:]
    yaws = yaws_of(pipe, probe)
    turns = {side: turn_runs(yaws, side) for side in ("left", "right")}
    frontal = [i for i, y in enumerate(yaws) if abs(y) <= FRONTAL_YAW]
    if not frontal or not all(turns.values()):
        raise InputError(f"the woman's clip: no frontal frame or no turn run ({yaws})")
    holds = {side: [hold_frames(yaws, r, side) for r in runs] for side, runs in turns.items()}
    return Owner("woman", "turn", probe, yaws, _ping_pong(frontal), turns, holds, {}, m, thr)


def man(pipe: Pipeline, cfg: Config, clips: Path) -> Owner:
    """The man, enrolled from the first half of his clip; the blink owner (his second half,
    all frontal, each frame also with the eyes painted shut on the mesh of that frame)."""
    mal = clip_frames(clips / MALE)
    half = len(mal) // 2
    m, thr = enrol_template(pipe, cfg, mal[:half])
    probe = mal[half:]
    yaws = yaws_of(pipe, probe)
    frontal = [i for i, y in enumerate(yaws) if abs(y) <= FRONTAL_YAW]
    fm = M.get_face_mesh().load()
    pipe.reset_tracking()
    painted = {}
    for i in frontal:
        obs = pipe.observe(probe[i], select="largest", track=True)
        pts = fm.mesh(probe[i], landmarks5=obs[0].landmarks).points
        painted[i] = paint_closed(probe[i], pts)
    return Owner("man", "blink", probe, yaws, _ping_pong(frontal), {}, {}, painted, m, thr)


@dataclass
class SimulatedAttempt:
    """One attempt of a simulated owner in front of a camera. ``rng`` draws the user's side
    of it (reaction time, the turn run, the blink gap), independent of the challenge's draw;
    ``respond=False``: the same user who never responds (keeps facing the camera). The
    frontal loop starts at a drawn place of it, so attempts differ before the prompt too."""

    owner: Owner
    rng: random.Random
    fps: float = CLIP_FPS
    respond: bool = True
    reaction: tuple[float, float] = REACTION
    blink_gap: tuple[float, float] = BLINK_GAP
    closed_s: float = CLOSED_S
    noise: float = 1.0
    #: the challenge drawn (None until the match)
    drawn: Challenge | None = None
    #: timestamps: the match (the challenge drawn), the prompt shown
    match_t: float | None = None
    prompt_t: float | None = None
    #: the timestamp of the last frame delivered
    t: float = 0.0
    react_s: float = field(init=False)
    gap_s: float = field(init=False)
    run_pick: float = field(init=False)
    phase: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.fps > 0 or not 0 < self.reaction[0] <= self.reaction[1]:
            raise InputError(f"simulated attempt: bad fps {self.fps} or reaction {self.reaction}")
        self.react_s = self.rng.uniform(*self.reaction)
        self.gap_s = self.rng.uniform(*self.blink_gap)
        self.run_pick = self.rng.random()
        self.phase = self.rng.randrange(len(self.owner.frontal))  # where the loop starts
        self._noise = np.random.default_rng(self.rng.getrandbits(32))

    # ------------------------------------------------------------ hooks of the attempt

    def wrap(self, draw: Callable[[], Challenge]) -> Callable[[], Challenge]:
        """``draw`` (the attempt's ``challenge`` callable), recording what it drew and when."""

        def recorded() -> Challenge:
            ch = draw()
            self.drawn, self.match_t = ch, self.t
            return ch

        return recorded

    def on_prompt(self, words: str) -> None:
        self.prompt_t = self.t

    def clock(self) -> float:
        return self.t

    # ------------------------------------------------------------ what the camera sees

    @property
    def act_t(self) -> float:
        """When the user starts doing what was asked (inf: never)."""
        if not self.respond or self.prompt_t is None:
            return float("inf")
        return self.prompt_t + self.react_s

    def _frontal(self, t: float) -> int:
        order = self.owner.frontal
        return order[(int(t * CLIP_FPS + 1e-6) + self.phase) % len(order)]

    def blink_onsets(self) -> tuple[float, float]:
        return self.act_t, self.act_t + self.gap_s

    def shown(self, t: float) -> tuple[int, bool]:
        """(the probe frame index shown at ``t``, whether its eyes are painted shut)."""
        act = self.act_t
        if t < act or self.drawn is None:
            return self._frontal(t), False
        if isinstance(self.drawn, HeadTurn):
            side = self.drawn.direction
            runs = self.owner.turns.get(side)
            if not runs:
                raise InputError(f"{self.owner.name} has no turn to the {side} to show")
            k = min(int(self.run_pick * len(runs)), len(runs) - 1)
            run, hold = runs[k], self.owner.holds[side][k]
            j = int((t - act) * CLIP_FPS + 1e-6)
            if j < len(run):
                return run[j], False
            loop = _ping_pong(hold)
            return loop[(j - len(run)) % len(loop)], False
        if isinstance(self.drawn, Blink):
            if not self.owner.painted:
                raise InputError(f"{self.owner.name} has no painted blink to show")
            i = self._frontal(t)
            shut = any(on <= t < on + self.closed_s for on in self.blink_onsets())
            return i, shut and i in self.owner.painted
        raise InputError(f"no simulated answer to a {self.drawn.kind} challenge")

    def frames(self, seconds: float = 30.0) -> Iterator[Frame]:
        """The camera: one frame per 1/fps s for up to ``seconds``."""
        for k in range(int(seconds * self.fps)):
            t = k / self.fps
            self.t = t
            i, shut = self.shown(t)
            im = self.owner.painted[i] if shut else self.owner.frames[i]
            if self.fps != CLIP_FPS and self.noise > 0:
                im = np.clip(im + self._noise.normal(0.0, self.noise, im.shape), 0, 255
                             ).astype(np.uint8)
            yield Frame(im, k, t)

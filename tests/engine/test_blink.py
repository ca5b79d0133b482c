"""The blink challenge (liveness.level = active, the "Blink twice" draw): the rule on eye
aspect ratios, and on real frames with the real face mesh: the clips (which hold no blink)
fail it, and the man's clip with the eyes painted shut on a few frames (real pixels the mesh
model itself reads as closed lids) passes it; a seeded whole attempt that draws it."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from faceunlock.app import service
from faceunlock.engine import mesh as M
from faceunlock.engine.challenge import (
    BLINK_MESSAGE,
    BLINK_PROMPT,
    Blink,
    ChallengeRun,
    Face,
    State,
    draw_challenge,
    parse_kinds,
)
from faceunlock.engine.pipeline import FaceObservation, Pipeline, PipelineSettings
from faceunlock.engine.sources import ImageFolderSource
from faceunlock.errors import AuthStatus, InputError
from tests.fakes.clip_material import (
    FEMALE,
    MALE,
    EnrolledClips,
    clip_config,
    clip_frames,
    paint_closed,
)

FPS = 12.5

# ---------------------------------------------------------------- the rule, on EARs


def _eye_points(ear: float) -> np.ndarray:
    """(468, 2) points whose two eyes have aspect ratio ``ear`` (the rest unused)."""
    p = np.zeros((M.N_POINTS, 2))
    for k, (p1, p2, p3, p4, p5, p6) in enumerate(M.EYE_EAR):
        x0 = 100.0 * k
        p[p1], p[p4] = (x0, 0.0), (x0 + 30.0, 0.0)
        h = ear * 30.0 / 2.0
        p[p2], p[p3] = (x0 + 10, -h), (x0 + 20, -h)
        p[p6], p[p5] = (x0 + 10, h), (x0 + 20, h)
    return p


@dataclass(frozen=True)
class _Face:
    ear: float
    box: tuple[float, float, float, float] = (100.0, 100.0, 160.0, 160.0)

    @property
    def landmarks(self) -> np.ndarray:
        return np.zeros((5, 2), np.float32)

    @property
    def embedding(self) -> np.ndarray:
        return np.zeros(128, np.float32)


def _points(image: np.ndarray, face: Face) -> np.ndarray:
    assert isinstance(face, _Face)
    return _eye_points(face.ear)


def _rule(ears: Sequence[float | None], delay: float = 0.0, seconds: float = 4.0) -> Blink:
    ch = Blink(seconds, delay=delay, points=_points)
    ch.start([_Face(0.3)], 0.0)
    frame = np.zeros((4, 4, 3), np.uint8)
    for i, e in enumerate(ears, 1):
        if ch.update(i / FPS, None if e is None else _Face(e), frame) is not State.PENDING:
            break
    return ch


OP, C = 0.30, 0.10  # open, closed


def test_blink_rule() -> None:
    # two blinks after the prompt (closing 0.4 s and 1.0 s after it): passed
    two = _rule([OP] * 5 + [C, OP] + [OP] * 6 + [C, C, OP, OP])
    assert two.state is State.PASSED and two.blinks == pytest.approx([0.48, 1.12]), two.blinks
    # one blink: the window runs out
    one = _rule([OP] * 5 + [C, OP] + [OP] * 60)
    assert one.state is State.FAILED and one.reason == "blinked 1 of 2 times within 4 s"
    none = _rule([OP] * 60)
    assert none.state is State.FAILED and none.reason == "no blink within 4 s"
    # a blink before the prompt (natural) neither fails nor counts
    early = _rule([OP] * 4 + [C, OP] + [OP] * 10 + [C, OP] + [OP] * 60, delay=1.0)
    assert early.state is State.FAILED and early.reason.startswith("blinked 1 of 2"), early.blinks
    assert _rule([OP] * 4 + [C, OP] + [OP] * 10 + [C, OP, OP, OP, C, OP], delay=1.0).state \
        is State.PASSED
    # closing sooner than BLINK_REACTION after the prompt: already under way, not counted
    soon = _rule([OP, OP, OP, C, OP, OP, OP, OP, C, OP] + [OP] * 60, delay=0.2)
    assert soon.state is State.FAILED and len(soon.blinks) == 1
    # two blinks too far apart (3 s): the second starts a new series
    apart = _rule([OP] * 5 + [C, OP] + [OP] * 38 + [C, OP] + [OP] * 40, seconds=6.0)
    assert apart.state is State.FAILED and "1 of 2" in apart.reason
    # the open level is the 90th percentile: a few wide-open frames put it above the usual
    # open EAR (0.30 is 0.83 of 0.36); the eyes back at 0.30 between two quick blinks have
    # reopened (at least BLINK_REOPEN), so two blinks, not one long one
    wide = _rule([0.36] * 3 + [OP] * 5 + [C, C, OP, OP, C, C] + [OP] * 3)
    assert wide.state is State.PASSED and len(wide.blinks) == 2, wide.to_json()
    assert _rule([0.36] * 3 + [OP] * 5 + [C, C, 0.26, 0.26, C, C] + [OP] * 60).state \
        is State.FAILED  # 0.72 of the open level: not reopened, one blink
    # a squint (0.8 of open) is no blink; frames without a face or reading do not break it
    assert _rule([OP] * 5 + [0.24, OP] * 5 + [OP] * 40).state is State.FAILED
    gaps = _rule([OP] * 5 + [C, None, OP] + [OP] * 4 + [None, C, OP])
    assert gaps.state is State.PASSED
    with pytest.raises(InputError, match="seconds"):
        Blink(0.0)
    with pytest.raises(InputError, match="delay"):
        Blink(4.0, delay=-1.0)


def test_challenge_kinds_from_the_config() -> None:
    assert parse_kinds("turn,blink") == ("turn-left", "turn-right", "blink")
    assert parse_kinds("blink") == ("blink",)
    with pytest.raises(InputError, match="'nod' is not a challenge"):
        parse_kinds("turn,nod")
    with pytest.raises(InputError, match="at least one"):
        parse_kinds(" , ")
    from faceunlock.config import Config, config_set
    from faceunlock.errors import ConfigError

    with pytest.raises(ConfigError, match="'nod' is not one of"):
        config_set(Config(), "liveness.challenges", "nod")
    assert config_set(Config(), "liveness.challenges", "blink").liveness.challenges == "blink"


# ---------------------------------------------------------------- real frames, real mesh

@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline(PipelineSettings(min_face=50, max_face=160))


@pytest.fixture(scope="module")
def fm() -> M.FaceMesh:
    return M.get_face_mesh().load()


def _observe(pipe: Pipeline, frames: list[np.ndarray]) -> list[list[FaceObservation]]:
    pipe.reset_tracking()
    return [pipe.observe(im, select="all", track=True) for im in frames]


def _play(pipe: Pipeline, frames: list[np.ndarray], delay: float,
          seconds: float = 4.0) -> ChallengeRun:
    """Frames 0-1 match; the rest feed a Blink challenge (the real mesh), at 12.5 fps."""
    obs = _observe(pipe, frames)
    run = ChallengeRun(Blink(seconds, delay=delay), [o[0] for o in obs[:2]], t=1 / FPS)
    for i in range(2, len(frames)):
        if run.feed(i / FPS, obs[i], frames[i]) is not State.PENDING:
            break
    run.expire("the frames ended")
    return run


@pytest.fixture(scope="module")
def man(clips_dir: Path) -> list[np.ndarray]:
    return clip_frames(clips_dir / MALE)


def _painted(pipe: Pipeline, fm: M.FaceMesh, frames: list[np.ndarray],
             shut: list[int]) -> list[np.ndarray]:
    obs = _observe(pipe, frames)
    out = list(frames)
    for i in shut:
        pts = fm.mesh(frames[i], landmarks5=obs[i][0].landmarks).points
        out[i] = paint_closed(frames[i], pts)
    return out


def test_the_mesh_reads_painted_lids_as_closed(pipe: Pipeline, fm: M.FaceMesh,
                                               man: list[np.ndarray]) -> None:
    """On the man's (frontal) clip the mesh's EAR falls below BLINK_DIP of the open level on
    every painted frame (measured 0.51-0.64 of the unpainted frame's; on the woman's turned
    head it only falls to ~0.8, see docs/liveness.md)."""
    idx = list(range(0, 60, 6))
    obs = _observe(pipe, man)
    for i in idx:
        lm = obs[i][0].landmarks
        pts = fm.mesh(man[i], landmarks5=lm).points
        open_ear = M.eye_aspect_ratio(pts)
        shut = M.eye_aspect_ratio(fm.mesh(paint_closed(man[i], pts), landmarks5=lm).points)
        assert shut < M.BLINK_DIP * open_ear, (i, open_ear, shut)


def test_the_clips_fail_a_blink_challenge(pipe: Pipeline, man: list[np.ndarray],
                                          clips_dir: Path) -> None:
    run = _play(pipe, man, delay=0.5)
    assert run.state is State.FAILED and run.reason == "no blink within 4 s", run.to_json()
    assert isinstance(run.challenge, Blink) and run.frames > 40
    assert all(e is not None for _, e in run.challenge.trace)  # the mesh read every frame
    her = _play(pipe, clip_frames(clips_dir / FEMALE), delay=0.0)
    assert her.state is State.FAILED, her.to_json()


def test_painted_blinks_pass_only_after_the_prompt(pipe: Pipeline, fm: M.FaceMesh,
                                                   man: list[np.ndarray]) -> None:
    # prompt at 0.58 s (frame ~7); eyes shut on frames 17-18 and 26-27 (0.78 and 1.5 s after)
    frames = _painted(pipe, fm, man, [17, 18, 26, 27])
    run = _play(pipe, frames, delay=0.5)
    assert run.state is State.PASSED, run.to_json()
    blink = run.challenge
    assert isinstance(blink, Blink) and len(blink.blinks) == 2
    assert blink.blinks == pytest.approx([0.78, 1.5]), blink.blinks
    # a blink before the prompt (1 s after the match) neither counts nor fails: one after it
    early = _play(pipe, _painted(pipe, fm, man, [8, 9, 30, 31]), delay=1.0, seconds=3.0)
    assert early.state is State.FAILED and early.reason == "blinked 1 of 2 times within 3 s", \
        early.to_json()


def test_a_blink_by_another_face_is_refused(pipe: Pipeline, fm: M.FaceMesh,
                                            man: list[np.ndarray], clips_dir: Path) -> None:
    """The woman's face matched; the man's face, which then blinks twice where hers was,
    does not pass."""
    her = _observe(pipe, clip_frames(clips_dir / FEMALE)[:2])
    frames = _painted(pipe, fm, man, [10, 11, 18, 19])
    obs = _observe(pipe, frames)
    run = ChallengeRun(Blink(4.0), [o[0] for o in her], t=0.0)
    run._box = obs[0][0].box  # the swap happens where the tracked box is
    for i in range(len(frames)):
        if run.feed(i / FPS, obs[i], frames[i]) is not State.PENDING:
            break
    assert run.state is State.FAILED and "not the one that matched" in run.reason, run.reason


# ---------------------------------------------------------------- a whole attempt, replayed


def _blink_seed() -> int:
    return next(s for s in range(100) if isinstance(draw_challenge(random.Random(s)), Blink))


@pytest.mark.slow
def test_a_replay_fails_the_drawn_blink(clips_dir: Path,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    owner = EnrolledClips(tmp_path_factory.mktemp("owner"), clips_dir)
    cfg = clip_config(**{"liveness.level": "active", "auth.timeout": "30",
                         "auth.max_failures": "100"})
    seed = _blink_seed()
    prompts: list[str] = []
    res = service.authenticate_user(
        owner.store, "alice", cfg, ImageFolderSource(owner.genuine, fps=FPS),
        on_prompt=prompts.append, challenge=lambda: draw_challenge(random.Random(seed)))
    out = res.to_json()
    assert res.status == AuthStatus.PRESENTATION_ATTACK, out
    assert res.message == BLINK_MESSAGE and out["challenge"]["kind"] == "blink"
    assert out["liveness"]["live"] and out["challenge"]["state"] == "failed"
    if prompts:  # the prompt came before the frames ran out
        assert prompts == [BLINK_PROMPT]
    assert out["challenge"]["reason"].startswith(("no blink", "the frames ended before"))

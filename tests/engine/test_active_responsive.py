"""A simulated owner who answers the prompt passes ``liveness.level = active``; the same
simulated owner who does not answer fails it. Real clip pixels, the real models, the real
:func:`~faceunlock.engine.auth.authenticate` (tests/fakes/responsive_owner.py builds the
camera; benchmarks/active_frr.py runs it over many seeded draws)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from faceunlock.app import service
from faceunlock.engine.auth import AuthParams, AuthResult, authenticate
from faceunlock.engine.challenge import (
    BLINK_MESSAGE,
    CHALLENGE_MESSAGE,
    Blink,
    HeadTurn,
    draw_challenge,
    parse_kinds,
)
from faceunlock.engine.pipeline import Pipeline
from faceunlock.errors import AuthStatus
from tests.fakes import responsive_owner as R
from tests.fakes.clip_material import clip_config

CFG = clip_config(**{"liveness.level": "active"})


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return service.pipeline_for(CFG)


@pytest.fixture(scope="module")
def woman(pipe: Pipeline, clips_dir: Path) -> R.Owner:
    return R.woman(pipe, CFG, clips_dir)


@pytest.fixture(scope="module")
def man(pipe: Pipeline, clips_dir: Path) -> R.Owner:
    return R.man(pipe, CFG, clips_dir)


def _seed(kinds: str, direction: str | None = None) -> int:
    """The first seed whose draw among ``kinds`` is a turn to ``direction`` (or any draw)."""
    for s in range(100):
        ch = draw_challenge(random.Random(s), kinds=parse_kinds(kinds))
        if direction is None or (isinstance(ch, HeadTurn) and ch.direction == direction):
            return s
    raise AssertionError("no such draw in 100 seeds")


def _attempt(pipe: Pipeline, owner: R.Owner, seed: int, respond: bool
             ) -> tuple[AuthResult, R.SimulatedAttempt]:
    sim = R.SimulatedAttempt(owner, random.Random(1_000_000 + seed), respond=respond)
    kinds = parse_kinds(owner.kinds)
    res = authenticate(
        pipe, owner.matcher, owner.threshold, sim.frames(), AuthParams(k=CFG.auth.k,
                                                                       n=CFG.auth.n),
        clock=sim.clock, liveness=service.liveness_for(CFG, pipe), on_prompt=sim.on_prompt,
        challenge=sim.wrap(lambda: draw_challenge(random.Random(seed), kinds=kinds)))
    return res, sim


def test_the_woman_has_frontal_frames_and_a_turn_each_way(woman: R.Owner) -> None:
    assert woman.frontal and all(abs(woman.yaws[i]) <= R.FRONTAL_YAW for i in woman.frontal)
    left, right = woman.turns["left"], woman.turns["right"]
    assert left and right
    assert all(woman.yaws[r[-1]] >= R.FAR_TURN for r in left)  # the user's left: yaw > 0
    assert all(woman.yaws[r[-1]] <= -R.FAR_TURN for r in right)


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["left", "right"])
def test_a_responsive_turn_passes_and_no_response_fails(pipe: Pipeline, woman: R.Owner,
                                                        direction: str) -> None:
    seed = _seed("turn", direction)
    res, sim = _attempt(pipe, woman, seed, respond=True)
    out = res.to_json()
    assert isinstance(sim.drawn, HeadTurn) and sim.drawn.direction == direction
    assert res.status == AuthStatus.OK, out
    assert sim.prompt_t is not None and out["challenge"]["state"] == "passed"
    still, sim2 = _attempt(pipe, woman, seed, respond=False)
    assert still.status == AuthStatus.PRESENTATION_ATTACK, still.to_json()
    assert still.message == CHALLENGE_MESSAGE and sim2.prompt_t is not None
    assert still.to_json()["challenge"]["reason"].startswith("no turn within")


@pytest.mark.slow
def test_a_responsive_double_blink_passes_and_no_response_fails(pipe: Pipeline,
                                                                man: R.Owner) -> None:
    seed = _seed("blink")
    res, sim = _attempt(pipe, man, seed, respond=True)
    out = res.to_json()
    assert isinstance(sim.drawn, Blink) and res.status == AuthStatus.OK, out
    assert len(out["challenge"]["blinks_s"]) == 2
    still, _ = _attempt(pipe, man, seed, respond=False)
    assert still.status == AuthStatus.PRESENTATION_ATTACK, still.to_json()
    assert still.message == BLINK_MESSAGE
    assert still.to_json()["challenge"]["reason"] == "no blink within 4 s"


def test_the_same_user_at_passive_is_accepted_without_a_prompt(pipe: Pipeline,
                                                               man: R.Owner) -> None:
    sim = R.SimulatedAttempt(man, random.Random(7))
    res = authenticate(pipe, man.matcher, man.threshold, sim.frames(), AuthParams(),
                       clock=sim.clock, liveness=service.liveness_for(CFG, pipe, "passive"))
    assert res.status == AuthStatus.OK and res.challenge is None and sim.prompt_t is None

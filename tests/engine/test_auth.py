"""Decision rule, lock-out counter and snapshots of faceunlock.engine.auth.

The k-of-n rule is exercised with a scripted observer (pure logic: which frames count);
the real pipeline on real clips is covered in tests/e2e/test_unlock_clips.py.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceunlock.engine.auth import AuthParams, FailureCounter, authenticate, save_snapshot
from faceunlock.engine.sources import Frame
from faceunlock.errors import AuthStatus, InputError

ANCHORS = np.zeros((2, 128), np.float32)


@dataclass
class _Obs:
    embedding: np.ndarray


class Scripted:
    """Returns, per call, faces at given distances from the anchors (None = no face)."""

    def __init__(self, script: list[list[float] | None]) -> None:
        self.script = list(script)

    def observe(self, image: np.ndarray, select: Any = "all", fallback_center: bool = False,
                track: bool = False):
        dists = self.script.pop(0)
        out = []
        for d in dists or []:
            e = np.zeros(128, np.float32)
            e[0] = d
            out.append(_Obs(e))
        return out


def _frames(n: int, value: int = 128) -> list[Frame]:
    return [Frame(np.full((40, 40, 3), value, np.uint8), i, float(i)) for i in range(n)]


def test_two_of_three_accepts() -> None:
    pipe = Scripted([[0.3], [0.9], [0.3], [0.3]])
    res = authenticate(pipe, ANCHORS, 0.5, _frames(4), AuthParams(k=2, n=3))
    assert res.status == AuthStatus.OK and len(res.frames) == 3


def test_single_match_is_not_enough() -> None:
    pipe = Scripted([[0.3], [0.9], [0.9], [0.9], [0.3]])
    res = authenticate(pipe, ANCHORS, 0.5, _frames(5), AuthParams(k=2, n=3))
    assert res.status == AuthStatus.NO_MATCH
    assert res.best_distance == pytest.approx(0.3)


def test_other_faces_never_count_but_the_users_does() -> None:
    # an impostor plus nobody: no; an impostor next to the user: the user's face counts
    pipe = Scripted([[0.9, 0.95], [0.9, 0.95], [0.9, 0.3], [0.3, 0.9]])
    res = authenticate(pipe, ANCHORS, 0.5, _frames(4), AuthParams(k=2, n=3))
    assert [f.match for f in res.frames] == [False, False, True, True]
    assert res.status == AuthStatus.OK


def test_no_face_and_dark_statuses() -> None:
    res = authenticate(Scripted([None] * 3), ANCHORS, 0.5, _frames(3))
    assert res.status == AuthStatus.TIMEOUT and "No face" in res.message
    res = authenticate(Scripted([]), ANCHORS, 0.5, _frames(3, value=5))
    assert res.status == AuthStatus.TOO_DARK


def test_timeout_stops_reading() -> None:
    t = iter(range(100))
    res = authenticate(Scripted([[0.9]] * 100), ANCHORS, 0.5, _frames(100),
                       AuthParams(timeout=5.0), clock=lambda: float(next(t)))
    assert res.status == AuthStatus.NO_MATCH and len(res.frames) == 5


def test_bad_params() -> None:
    with pytest.raises(InputError, match="k <= n"):
        AuthParams(k=4, n=3)
    with pytest.raises(InputError, match="no anchors"):
        authenticate(Scripted([]), np.zeros((0, 128)), 0.5, _frames(1))


def test_failure_counter_locks_and_resets(tmp_path: Path) -> None:
    now = [1000.0]
    c = FailureCounter(tmp_path / "f.json", max_failures=3, lockout_seconds=60,
                       clock=lambda: now[0])
    c.record(False)
    c.record(False)
    assert c.locked_for() == 0 and c.failures == 2
    c.record(True)
    assert c.failures == 0
    for _ in range(3):
        c.record(False)
    assert c.locked_for() == pytest.approx(60)
    assert stat.S_IMODE((tmp_path / "f.json").stat().st_mode) == 0o600
    now[0] += 61
    assert c.locked_for() == 0
    (tmp_path / "f.json").write_text("{garbage")
    assert c.failures == 0  # a corrupt counter never blocks anyone


def test_snapshots_are_private_and_pruned(tmp_path: Path) -> None:
    d = tmp_path / "snaps"
    for _ in range(5):
        p = save_snapshot(d, np.full((20, 20, 3), 100, np.uint8), keep=3)
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert len(list(d.glob("*.jpg"))) == 3
    assert stat.S_IMODE(d.stat().st_mode) == 0o700

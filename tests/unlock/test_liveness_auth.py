"""Passive liveness through ``faceunlock auth``: ten copies of one frame of the owner, the
frame moved as a hand-held photo and her clip replayed on a phone are refused with
PRESENTATION_ATTACK (21) and counted as failures; her live clip still unlocks. Without
liveness (level off) the same copies unlock, as they did before the stage existed."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from faceunlock import cli
from faceunlock.app import service
from faceunlock.config import Config
from faceunlock.errors import AuthStatus
from faceunlock.paths import user_state_dir
from tests.fakes.attack_material import attacks
from tests.fakes.clip_material import EnrolledClips

pytestmark = pytest.mark.slow

class _Fixed(random.Random):
    """A draw fixed in advance: ``choice`` returns ``picks`` in turn, ``uniform`` ``delay``."""

    def __init__(self, picks: list[str], delay: float) -> None:
        super().__init__(0)
        self.picks, self.delay = list(picks), delay

    def choice(self, seq):  # type: ignore[no-untyped-def, override]
        return self.picks.pop(0)

    def uniform(self, a: float, b: float) -> float:
        return self.delay


ATTACK_MESSAGE = "Face not accepted: this looks like a photo or a screen. Type your password."


@pytest.fixture(scope="module")
def owner(clips_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> EnrolledClips:
    return EnrolledClips(tmp_path_factory.mktemp("owner"), clips_dir)


@pytest.fixture(scope="module")
def attack_dirs(clips_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return attacks(tmp_path_factory.mktemp("attacks"), clips_dir)


def _auth(owner: EnrolledClips, source: Path, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    monkeypatch.setattr("faceunlock.cli.common._store", lambda: owner.store)
    rc = cli.main(["auth", "--user", "alice", "--source", str(source), "--json"])
    cap = capsys.readouterr()
    res = json.loads(cap.out.strip().splitlines()[-1])
    res["stderr"] = cap.err  # the challenge's prompt, at active
    return rc, res


@pytest.mark.parametrize("kind", ["copies", "moving-photo", "screen-replay"])
def test_attacks_are_refused_and_counted(
    kind: str, owner: EnrolledClips, attack_dirs: dict[str, Path],
    clip_config: Callable[[Mapping[str, str]], Config], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = clip_config({"liveness.level": "passive", "auth.timeout": "30",
                       "auth.snapshots": "true"})
    rc, res = _auth(owner, attack_dirs[kind], monkeypatch, capsys)
    assert rc == AuthStatus.PRESENTATION_ATTACK == 21, res
    assert res["message"] == ATTACK_MESSAGE
    assert res["liveness"]["live"] is False and res["liveness"]["reasons"], res
    assert res["best_distance"] <= res["threshold"]  # the face did match: liveness refused it
    assert service.failure_counter(cfg, "alice").failures == 1
    assert len(list((user_state_dir() / "snapshots").glob("*.jpg"))) == 1


@pytest.mark.parametrize("level", ["passive", "active"])
def test_owner_live_clip_still_unlocks(
    level: str, owner: EnrolledClips, clip_config: Callable[[Mapping[str, str]], Config],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    # at active her clip plays at (about) its own 12.5 fps: the turn at its own speed
    cfg = clip_config({"liveness.level": level, "auth.timeout": "30", "camera.fps": "12"})
    if level == "active":  # the draw that matches her clip's turn (to her right), at once
        monkeypatch.setattr("faceunlock.engine.challenge.production_rng",
                            lambda: _Fixed(["turn-right"], 0.0))
    rc, res = _auth(owner, owner.genuine, monkeypatch, capsys)
    if level == "active":
        assert ">>> Turn your head slowly to your right <<<" in res["stderr"]
        assert res["challenge"]["state"] == "passed", json.dumps(res["challenge"])
    assert rc == AuthStatus.OK, res
    assert res["liveness"]["live"] is True and res["liveness"]["judged"] == cfg.auth.k
    assert service.failure_counter(cfg, "alice").failures == 0


def test_owner_on_an_infrared_camera_unlocks_at_passive(
    owner: EnrolledClips, clip_config: Callable[[Mapping[str, str]], Config],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """Her live clip as greyscale frames (what an IR camera delivers): at passive the IR cues
    judge it (the colour model, which refuses grey faces, does not run), and it unlocks; ten
    copies of one grey frame are still refused (frozen)."""
    import cv2

    from tests.fakes.clip_material import png_folder

    clip_config({"auth.timeout": "30", "liveness.level": "passive"})
    frames = sorted(owner.genuine.glob("*.png"))
    grey = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in frames]
    live = tmp_path / "ir-live"
    live.mkdir()
    for i, g in enumerate(grey):
        cv2.imwrite(str(live / f"{i:04d}.png"), g)
    rc, res = _auth(owner, live, monkeypatch, capsys)
    assert rc == AuthStatus.OK, res
    assert res["liveness"]["live"] is True and res["liveness"]["score"] is None
    still = png_folder(tmp_path / "ir-still", [cv2.cvtColor(grey[0], cv2.COLOR_GRAY2RGB)] * 10)
    rc, res = _auth(owner, still, monkeypatch, capsys)
    assert rc == AuthStatus.PRESENTATION_ATTACK, res
    assert "frozen" in res["liveness"]["reasons"]


def test_grey_frames_from_a_colour_source_are_judged_by_the_colour_model(
    owner: EnrolledClips, clip_config: Callable[[Mapping[str, str]], Config],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """Near-grey three-channel frames (what a colour camera delivers when a black-and-white
    print fills its view) are not taken for an infrared sensor: the colour model still runs
    on them (a score, where the single-channel IR frames above get none). Only a
    single-channel source or a camera whose name says infrared gets the IR cues instead."""
    import cv2

    from tests.fakes.clip_material import png_folder

    clip_config({"auth.timeout": "30", "liveness.level": "passive"})
    frames = sorted(owner.genuine.glob("*.png"))
    grey3 = [cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB)
             for f in frames]
    _, res = _auth(owner, png_folder(tmp_path / "bw-view", grey3), monkeypatch, capsys)
    assert res["liveness"] is not None, res
    assert res["liveness"]["score"] is not None, res["liveness"]


def test_without_liveness_a_still_unlocks(
    owner: EnrolledClips, attack_dirs: dict[str, Path],
    clip_config: Callable[[Mapping[str, str]], Config], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip_config({"liveness.level": "off", "auth.timeout": "30"})
    rc, res = _auth(owner, attack_dirs["copies"], monkeypatch, capsys)
    assert rc == AuthStatus.OK, res
    assert res["liveness"] is None

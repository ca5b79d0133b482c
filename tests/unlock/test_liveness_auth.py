"""Passive liveness through ``faceunlock auth``: ten copies of one frame of the owner, the
frame moved as a hand-held photo and her clip replayed on a phone are refused with
PRESENTATION_ATTACK (21) and counted as failures; her live clip still unlocks. Without
liveness (level off) the same copies unlock, as they did before the stage existed."""

from __future__ import annotations

import json
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
    out = capsys.readouterr().out.strip().splitlines()
    return rc, json.loads(out[-1])


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
    cfg = clip_config({"liveness.level": level, "auth.timeout": "30"})
    rc, res = _auth(owner, owner.genuine, monkeypatch, capsys)
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


def test_without_liveness_a_still_unlocks(
    owner: EnrolledClips, attack_dirs: dict[str, Path],
    clip_config: Callable[[Mapping[str, str]], Config], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip_config({"liveness.level": "off", "auth.timeout": "30"})
    rc, res = _auth(owner, attack_dirs["copies"], monkeypatch, capsys)
    assert rc == AuthStatus.OK, res
    assert res["liveness"] is None

"""`faceunlock enroll`: a guided, paced capture from a clip played as a camera; adding an
appearance (``--label``) needs the enrolled owner at the camera and anchors that match them;
``--replace`` starts over and says so."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from faceunlock import cli
from faceunlock.config import Config
from faceunlock.engine import service
from faceunlock.engine.sources import ImageFolderSource
from faceunlock.engine.templates import StaticKeyProvider, TemplateStore
from faceunlock.errors import AuthStatus
from tests.fakes.clip_material import FEMALE, MALE, clip_frames, png_folder

USER = "alice"
pytestmark = pytest.mark.slow


@pytest.fixture()
def owner(
    tmp_path: Path,
    clips_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    clip_config: Callable[[Mapping[str, str]], Config],
) -> TemplateStore:
    """alice (the woman) enrolled from half her clip; the CLI uses this store."""
    cfg = clip_config({"enrol.anchors": "3"})
    store = TemplateStore(tmp_path / "templates", StaticKeyProvider(os.urandom(32)))
    fem = clip_frames(clips_dir / FEMALE)
    service.enrol(store, USER, cfg, ImageFolderSource(png_folder(tmp_path / "f", fem[:12])),
                  params=service.enrol_params(cfg, guided=False))
    monkeypatch.setattr(cli, "_store", lambda: store)
    return store


def _enroll(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(["enroll", "--user", USER, "--anchors", "3", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_label_with_another_person_is_refused(
    owner: TemplateStore, clips_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = owner.path(USER).read_bytes()
    rc, out, err = _enroll(capsys, "--label", "glasses", "--source", str(clips_dir / MALE))
    assert rc == AuthStatus.NO_MATCH, err
    assert "only the enrolled owner can add an appearance" in out.lower()
    assert "not recognised as alice" in err and "Nothing was saved" in err
    assert owner.path(USER).read_bytes() == before


def test_label_with_the_owner_is_added_then_replace_starts_over(
    owner: TemplateStore, clips_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [a.id for a in owner.load(USER).anchors]
    clip = str(clips_dir / FEMALE)
    rc, out, err = _enroll(capsys, "--label", "glasses", "--source", clip)
    assert rc == 0, err
    t = owner.load(USER)
    assert [a.id for a in t.anchors][: len(ids)] == ids and t.labels() == ["default", "glasses"]
    assert "centre 1, left 1, right 1" in out
    # a prompt is printed when it changes, not once per frame (the clip loops for seconds)
    assert 1 <= err.count("Turn your head a little to the left\n") <= 4
    rc, out, err = _enroll(capsys, "--replace", "--label", "new", "--source", clip)
    assert rc == 0, err
    assert "Starting over" in out
    t = owner.load(USER)
    assert t.labels() == ["new"] and not {a.id for a in t.anchors} & set(ids)


def test_calibrate_says_to_look_at_the_camera_first(
    owner: TemplateStore, clips_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["calibrate", "--user", USER, "--source", str(clips_dir / FEMALE),
                   "--seconds", "0.5"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "Look at the camera for 0.5 s, as you would to unlock..."
    assert lines[1].startswith("threshold ")
    rc = cli.main(["calibrate", "--user", USER, "--no-live"])  # no capture: no prompt
    out, _ = capsys.readouterr()
    assert rc == 0 and "Look at the camera" not in out

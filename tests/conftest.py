from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from faceunlock.config import Config, save_config
from faceunlock.engine.templates import StaticKeyProvider, TemplateStore
from tests.fakes.faces import FACES, ParitySample

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FACEUNLOCK_SHARED", REPO.parent / "shared"))
LFW = SHARED / "datasets" / "lfw"
CLIPS = SHARED / "datasets" / "clips"


@pytest.fixture(autouse=True)
def _isolate_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Point every per-user directory at a temp dir so tests never touch the real home."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("QT_QPA_PLATFORM", os.environ.get("QT_QPA_PLATFORM", "offscreen"))


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    if not (LFW / "images").is_dir():
        pytest.skip("../shared/datasets/lfw is not available")
    return LFW


@pytest.fixture()
def clip_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                ) -> Callable[[Mapping[str, str]], Config]:
    """``clip_config({key: value})``: a config for the webcam clips (their faces are 57-70 px:
    detect from 50 px, up to 160) with those keys changed, saved in ``tmp_path`` and made the
    current config ($FACEUNLOCK_CONFIG)."""

    from tests.fakes.clip_material import clip_config as config_for_clips

    def make(overrides: Mapping[str, str]) -> Config:
        c = config_for_clips(**overrides)
        path = tmp_path / "config.toml"
        save_config(c, path)
        monkeypatch.setenv("FACEUNLOCK_CONFIG", str(path))
        return c

    return make


@pytest.fixture()
def store(tmp_path: Path) -> TemplateStore:
    """A throw-away template store with a random static key (no keyring)."""
    return TemplateStore(tmp_path / "templates", StaticKeyProvider(os.urandom(32)))


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The committed test faces (tests/data/faces), present in every clone: 250x250 crops of
    one face each (``woman-*.jpg``, ``man-*.jpg``; faces of 95-115 px) and ``pair-00.jpg``,
    a whole 480x270 frame with both people."""
    assert (FACES / "woman-09.jpg").is_file(), f"{FACES} is incomplete"
    return FACES


@pytest.fixture(scope="session")
def face_sample(faces_dir: Path) -> list[Path]:
    """Every committed one-face image, the woman's first, then the man's (name order)."""
    return sorted(faces_dir.glob("woman-*.jpg")) + sorted(faces_dir.glob("man-*.jpg"))


@pytest.fixture(scope="session", params=["faces", "lfw"])
def parity_sample(request: pytest.FixtureRequest, faces_dir: Path) -> ParitySample:
    """The dlib-parity tests run on the committed faces on every clone, and on LFW where
    ../shared has it (skipped otherwise)."""
    if request.param == "faces":
        one = sorted(faces_dir.glob("woman-*.jpg")) + sorted(faces_dir.glob("man-*.jpg"))
        return ParitySample("faces", [*one, faces_dir / "pair-00.jpg"])
    return ParitySample("lfw", request.getfixturevalue("lfw_devtest_sample"))


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    if not CLIPS.is_dir():
        pytest.skip("../shared/datasets/clips is not available")
    return CLIPS


@pytest.fixture(scope="session")
def lfw_devtest_sample(lfw_dir: Path) -> list[Path]:
    """60 distinct LFW DevTest images (deterministic), for parity tests."""
    return lfw_devtest_images(lfw_dir, 60)


def lfw_devtest_images(lfw: Path, n: int) -> list[Path]:
    """The first ``n`` distinct images named in pairsDevTest.txt (deterministic order)."""
    out: list[Path] = []
    seen: set[Path] = set()
    lines = (lfw / "pairsDevTest.txt").read_text().split("\n")[1:]
    for line in lines:
        parts = line.split()
        if len(parts) == 3:
            refs = [(parts[0], int(parts[1])), (parts[0], int(parts[2]))]
        elif len(parts) == 4:
            refs = [(parts[0], int(parts[1])), (parts[2], int(parts[3]))]
        else:
            continue
        for name, idx in refs:
            p = lfw / "images" / name / f"{name}_{idx:04d}.jpg"
            if p not in seen:
                seen.add(p)
                out.append(p)
            if len(out) >= n:
                return out
    return out


@pytest.fixture()
def notify_bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A private session bus with dbusmock's notification daemon and a locked screen-saver
    stand-in, set as $DBUS_SESSION_BUS_ADDRESS (tests/fakes/notify_daemon.py)."""
    from tests.fakes.notify_daemon import notify_bus_session

    yield from notify_bus_session(monkeypatch)

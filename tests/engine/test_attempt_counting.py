"""Every attempt that compared a face counts towards the lock-out, whatever ends it
(:func:`faceunlock.engine.service.authenticate_user`): the failure is on disk before the first
frame and forgiven on success; an attempt that saw no face is taken back. Real models, the
../shared webcam clips as image-folder cameras; the interruption is a real KeyboardInterrupt
(what Ctrl-C raises) from inside the frame source."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.engine import service
from faceunlock.engine.sources import ImageFolderSource
from faceunlock.errors import AuthStatus
from tests.fakes.clip_material import EnrolledClips, watcher_config

USER = "alice"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, clips_dir: Path) -> EnrolledClips:
    return EnrolledClips(tmp_path_factory.mktemp("counting"), clips_dir)


class Interrupted(ImageFolderSource):
    """An image-folder camera where Ctrl-C arrives while frame ``after`` is being read."""

    def __init__(self, path: Path, after: int) -> None:
        super().__init__(path)
        self.after = after
        self.reads = 0

    def _read_raw(self) -> np.ndarray | None:
        if self.reads == self.after:
            raise KeyboardInterrupt
        self.reads += 1
        return super()._read_raw()


def _failures(state: Path) -> int | None:
    p = state / f"failures-{USER}.json"
    return int(json.loads(p.read_text())["failures"]) if p.exists() else None


def _auth(clips: EnrolledClips, source: ImageFolderSource, state: Path, **kw: object):
    cfg = watcher_config(**{"auth.max_failures": "5"})
    return service.authenticate_user(clips.store, USER, cfg, source, state_dir=state, **kw)


def test_ctrl_c_after_faces_were_compared_counts(clips: EnrolledClips, tmp_path: Path) -> None:
    for n in (1, 2, 3):
        with pytest.raises(KeyboardInterrupt):
            _auth(clips, Interrupted(clips.impostor, after=3), tmp_path)
        assert _failures(tmp_path) == n


def test_ctrl_c_before_the_first_frame_does_not_count(
    clips: EnrolledClips, tmp_path: Path
) -> None:
    with pytest.raises(KeyboardInterrupt):
        _auth(clips, Interrupted(clips.impostor, after=0), tmp_path)
    assert _failures(tmp_path) is None


def test_a_stopped_attempt_that_saw_faces_counts(clips: EnrolledClips, tmp_path: Path) -> None:
    """``should_stop`` (the watcher's cancel) after three frames with the impostor's face."""
    seen: list[object] = []
    res = _auth(clips, ImageFolderSource(clips.impostor), tmp_path,
                on_frame=seen.append, should_stop=lambda: len(seen) >= 3)
    assert res.status == AuthStatus.ABORTED and any(f.faces for f in res.frames)
    assert _failures(tmp_path) == 1


def test_no_match_counts_once_and_success_forgives(clips: EnrolledClips, tmp_path: Path) -> None:
    assert _auth(clips, ImageFolderSource(clips.impostor), tmp_path).status == AuthStatus.NO_MATCH
    assert _failures(tmp_path) == 1
    assert _auth(clips, ImageFolderSource(clips.impostor), tmp_path).status == AuthStatus.NO_MATCH
    assert _failures(tmp_path) == 2
    assert _auth(clips, ImageFolderSource(clips.genuine), tmp_path).status == AuthStatus.OK
    assert _failures(tmp_path) == 0


def test_an_attempt_without_a_face_is_taken_back(clips: EnrolledClips, tmp_path: Path) -> None:
    dark = tmp_path / "dark"
    dark.mkdir()
    for i in range(4):
        cv2.imwrite(str(dark / f"{i}.png"), np.zeros((240, 320, 3), np.uint8))
    state = tmp_path / "state"
    assert _auth(clips, ImageFolderSource(clips.impostor), state).status == AuthStatus.NO_MATCH
    res = _auth(clips, ImageFolderSource(dark), state)
    assert res.status == AuthStatus.TOO_DARK
    assert _failures(state) == 1  # the earlier failure stays, this one was refunded
    os.unlink(state / f"failures-{USER}.json")
    _auth(clips, ImageFolderSource(dark), state)
    assert _failures(state) is None


def test_the_lock_out_still_comes_after_max_failures(
    clips: EnrolledClips, tmp_path: Path
) -> None:
    for _ in range(5):
        with pytest.raises(KeyboardInterrupt):
            _auth(clips, Interrupted(clips.impostor, after=2), tmp_path)
    res = _auth(clips, ImageFolderSource(clips.genuine), tmp_path)
    assert res.status == AuthStatus.LOCKED_OUT

"""Region-of-interest tracking in Pipeline.detect(track=True) on real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceunlock.engine.imageio import read_image
from faceunlock.engine.pipeline import Pipeline, PipelineSettings, _iou


def _frame(face: np.ndarray, dx: int = 0) -> np.ndarray:
    """A 640x480 grey frame with a 250x250 face image (tests/data/faces) pasted at
    (80 + dx, 115)."""
    fr = np.full((480, 640, 3), 90, np.uint8)
    fr[115:365, 80 + dx : 330 + dx] = face
    return fr


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline(PipelineSettings(full_scan_every=5))


def test_tracked_frames_match_the_full_scan(faces_dir: Path, pipe: Pipeline) -> None:
    face = read_image(faces_dir / "woman-09.jpg")
    fr = _frame(face)
    full = pipe.observe(fr, select="largest")[0]
    pipe.reset_tracking()
    first = pipe.observe(fr, select="largest", track=True)
    assert not pipe.last_was_tracked  # nothing to track yet: whole frame
    flags = []
    for _ in range(7):
        obs = pipe.observe(fr, select="largest", track=True)
        flags.append(pipe.last_was_tracked)
        # the same face: the tracker searches around its own last box, so from frame to frame
        # its box may move by a pyramid step (1.2x) and a stride, and after a few frames be two
        # steps from the full scan's ((1/1.2)^4 = 0.48; the fp32 detector as tracker gives 0.49
        # on this face): the embedding is what matters
        assert _iou(obs[0].box, full.box) > 0.45
        assert np.linalg.norm(obs[0].embedding - full.embedding) < 0.1
    assert first[0].box == full.box
    # 5 tracked frames, then a forced full scan, then tracking again
    assert flags == [True] * 5 + [False, True]


def test_lost_face_falls_back_to_full_scan(faces_dir: Path, pipe: Pipeline) -> None:
    face = read_image(faces_dir / "woman-09.jpg")
    pipe.reset_tracking()
    pipe.observe(_frame(face), track=True)
    moved = _frame(face, dx=300)  # jumped far outside the tracked region
    obs = pipe.observe(moved, track=True)
    assert not pipe.last_was_tracked and len(obs) == 1
    assert obs[0].box[0] > 300


def test_new_face_elsewhere_is_found_by_the_periodic_scan(faces_dir: Path, pipe: Pipeline) -> None:
    a = read_image(faces_dir / "woman-09.jpg")
    b = read_image(faces_dir / "man-00.jpg")
    pipe.reset_tracking()
    pipe.observe(_frame(a), track=True)
    two = _frame(a)
    two[115:365, 370:620] = b
    counts = [len(pipe.observe(two, track=True)) for _ in range(6)]
    assert counts[0] == 1  # tracking only looks where the first face was
    assert 2 in counts  # the periodic full scan finds the newcomer within 5 frames


@pytest.fixture(scope="module")
def coarse() -> Pipeline:
    return Pipeline(PipelineSettings(coarse_first=True, max_face=400))


def test_coarse_first_finds_a_big_face_like_the_full_scan(faces_dir: Path, coarse: Pipeline
                                                         ) -> None:
    import cv2

    face = read_image(faces_dir / "man-00.jpg")
    big = cv2.resize(face, None, fx=1.6, fy=1.6)  # face ~180 px: found on the halved frame
    fr = np.full((480, 640, 3), 90, np.uint8)
    fr[40:440, 120:520] = big
    full = Pipeline(PipelineSettings())  # dlib's exact full pyramid
    ref = full.observe(fr, select="all")
    got = coarse.observe(fr, select="all")
    assert len(ref) == len(got) == 1
    assert _iou(got[0].box, ref[0].box) > 0.6  # within a pyramid step, as for tracking
    assert np.linalg.norm(got[0].embedding - ref[0].embedding) < 0.15
    # the coarse pass did the work: no full scan needed
    assert coarse.coarse.loaded


def test_coarse_first_falls_back_for_small_faces(faces_dir: Path, coarse: Pipeline) -> None:
    """A ~95 px face is below the coarse pass's 160 px: the full scan finds it, same box."""
    face = read_image(faces_dir / "woman-09.jpg")
    fr = _frame(face)
    ref = Pipeline(PipelineSettings(max_face=400)).observe(fr, select="all")
    got = coarse.observe(fr, select="all")
    assert [o.box for o in got] == [o.box for o in ref]
    assert not coarse.coarse.detect(fr)


def test_coarse_first_is_skipped_after_a_small_face(faces_dir: Path) -> None:
    """The coarse pass only pays for big faces: once the pipeline has seen a small face, the
    next first frame goes straight to the full scan, until a big face is seen again."""
    import cv2

    pipe = Pipeline(PipelineSettings(coarse_first=True, max_face=400))
    man = read_image(faces_dir / "man-00.jpg")
    big = np.full((480, 640, 3), 90, np.uint8)
    big[40:440, 120:520] = cv2.resize(man, None, fx=1.6, fy=1.6)
    small = _frame(read_image(faces_dir / "woman-09.jpg"))
    searches = []
    for frame in (big, small, big, big):
        pipe.reset_tracking()
        assert len(pipe.observe(frame, select="all", track=True)) == 1
        searches.append(pipe.last_search)
    assert searches == ["coarse", "coarse+full", "full", "coarse"]

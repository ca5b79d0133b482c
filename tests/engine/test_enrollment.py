"""Enrolment quality gates, on real faces (tests/data/faces) through the real pipeline, and the
guided capture
(required poses measured from the landmarks, pacing on frame timestamps) on the head-pose
clips: the woman turns left and right, the man only looks straight ahead."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.engine.enrollment import (
    INSTRUCTIONS,
    POSES,
    EnrolmentSession,
    EnrolParams,
    Feedback,
    classify_pose,
    head_pose,
    pose_degrees,
)
from faceunlock.engine.imageio import read_image
from faceunlock.engine.pipeline import Pipeline, PipelineSettings
from faceunlock.engine.sources import VideoFileSource

FEMALE = "head-pose-face-detection-female.gif"
MALE = "head-pose-face-detection-male.gif"


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline(PipelineSettings())


def _face(faces: Path, name: str = "woman-09") -> np.ndarray:
    """One of the committed 250x250 face images (tests/data/faces)."""
    return read_image(faces / f"{name}.jpg")


def test_gates_give_specific_reasons(faces_dir: Path, pipe: Pipeline) -> None:
    face = _face(faces_dir)
    s = EnrolmentSession(pipe, EnrolParams(anchors=3, guided=False))
    fb = s.offer(np.zeros_like(face))
    assert (fb.accepted, fb.code) == (False, "dark") and "light" in fb.reason
    fb = s.offer(np.full_like(face, 128))
    assert fb.code == "no_face" and "look at the camera" in fb.reason
    two = np.concatenate([face, _face(faces_dir, "man-00")], axis=1)
    assert s.offer(two).code == "several_faces"
    small = cv2.copyMakeBorder(cv2.resize(face, (125, 125)), 60, 60, 60, 60,
                               cv2.BORDER_REPLICATE)
    fb = s.offer(small)
    assert fb.code in ("too_far", "no_face"), fb
    fb = s.offer(cv2.GaussianBlur(face, (0, 0), 3.0))
    assert fb.code == "blurry" and "still" in fb.reason
    fb = s.offer(face)
    assert fb.accepted and fb.progress == 1 and fb.target == 3
    fb = s.offer(face.copy())
    assert fb.code == "duplicate"
    assert len(s.captures) == 1
    cap = s.captures[0]
    assert cap.thumbnail.shape == (64, 64, 3) and cap.embedding.shape == (128,)


def test_session_completes_with_distinct_views(face_sample: list[Path], pipe: Pipeline) -> None:
    s = EnrolmentSession(pipe, EnrolParams(anchors=3, guided=False))
    woman = [read_image(p) for p in face_sample if p.name.startswith("woman-")]
    feedback = s.run(woman)  # her four frames: the first turns too far, the others are taken
    assert s.done and len(s.captures) == 3
    assert feedback[-1].done
    assert s.embeddings().shape == (3, 128)
    assert feedback[0].code == "pose"
    assert s.offer(woman[1]).code == "done"


def test_head_pose_and_classification() -> None:
    frontal = np.array([[70, 50], [60, 50], [30, 50], [40, 50], [50, 70]], float)
    yaw, pitch = head_pose(frontal)
    assert yaw == pytest.approx(0.0) and pitch == pytest.approx(20 / 30)
    turned = frontal.copy()
    turned[4, 0] = 56  # nose to the image right: 0.2 eye distances
    y2, _ = head_pose(turned)
    assert y2 == pytest.approx(0.2)
    assert pose_degrees(y2, pitch, pitch)[0] == pytest.approx(21.8, abs=0.1)  # atan(0.2/0.5)
    p = EnrolParams()
    assert classify_pose(0.0, pitch, pitch, p) == "frontal"
    assert classify_pose(y2, pitch, pitch, p) == "left"
    assert classify_pose(-y2, pitch, pitch, p) == "right"
    assert classify_pose(0.6, pitch, pitch, p) == "other"  # 50°: more than a small turn
    assert classify_pose(0.05, pitch, pitch, p) == "frontal"  # 5.7°
    assert classify_pose(0.0, pitch + 0.15, pitch, p) == "down"
    assert classify_pose(0.0, pitch - 0.15, pitch, p) == "up"
    # a turn shortens the eye distance, not the nose drop: not read as a tilt
    assert classify_pose(0.3, pitch / math.cos(math.atan(0.6)), pitch, p) == "left"


def test_quotas_spread_the_anchors_over_the_poses() -> None:
    assert EnrolParams(anchors=10).quotas() == dict.fromkeys(POSES, 2)
    assert EnrolParams(anchors=3).quotas() == {
        "frontal": 1, "left": 1, "right": 1, "up": 0, "down": 0
    }
    assert sum(EnrolParams(anchors=7).quotas().values()) == 7


def test_pose_plan_and_instructions(faces_dir: Path, pipe: Pipeline) -> None:
    g = EnrolmentSession(pipe, EnrolParams(anchors=5))
    assert g.pose_plan() == ["frontal", "left", "right", "up", "down"]
    assert g.next_pose() == "frontal" and g.target == 5
    assert [pp.state for pp in g.pose_progress()] == ["current"] + ["waiting"] * 4
    # unguided: the poses are guidance only, any distinct good frame is taken
    s = EnrolmentSession(pipe, EnrolParams(anchors=5, guided=False))
    fb = s.offer(_face(faces_dir))
    assert fb.accepted and fb.instruction in INSTRUCTIONS.values()


# ------------------------------------------------------------------ guided capture, clips


@pytest.fixture(scope="module")
def clip_pipe() -> Pipeline:
    from faceunlock.engine import service
    from tests.fakes.clip_material import clip_config

    return service.pipeline_for(clip_config())


def _run(pipe: Pipeline, clip: Path, params: EnrolParams, max_frames: int = 400
         ) -> tuple[EnrolmentSession, list[Feedback]]:
    s = EnrolmentSession(pipe, params)
    out: list[Feedback] = []
    with VideoFileSource(clip, loop=True) as src:  # unpaced; timestamps on the clip's timeline
        for fr in src:
            out.append(s.offer(fr))
            if s.done or s.failure or fr.index >= max_frames:
                break
    return s, out


@pytest.fixture(scope="module")
def woman(clip_pipe: Pipeline, clips_dir: Path) -> tuple[EnrolmentSession, list[Feedback]]:
    """One guided capture of 5 anchors (one per pose) from the woman's clip; she never tilts
    her head, so up and down are skipped after the (short) optional timeout."""
    return _run(clip_pipe, clips_dir / FEMALE,
                EnrolParams(anchors=5, min_face=50, optional_timeout=1.0))


def test_guided_capture_takes_the_asked_poses(
    woman: tuple[EnrolmentSession, list[Feedback]],
) -> None:
    s, fbs = woman
    p = s.params
    assert s.done and not s.failure
    assert [c.pose for c in s.captures] == ["frontal", "left", "right"]
    yaws = [c.quality["yaw_deg"] for c in s.captures]
    assert abs(yaws[0]) <= p.frontal_degrees
    assert p.turn_degrees[0] <= yaws[1] <= p.turn_degrees[1]
    assert p.turn_degrees[0] <= -yaws[2] <= p.turn_degrees[1]
    assert max(yaws) - min(yaws) >= 20.0  # the clip offers the turns: the anchors spread
    # paced on the frame timestamps: each new prompt gets settle_seconds before an anchor
    stamps = [c.timestamp for c in s.captures]
    assert all(t is not None for t in stamps)
    gaps = np.diff(np.asarray(stamps, float))
    assert (gaps >= p.settle_seconds).all()
    assert s.capture_seconds() >= 3 * p.settle_seconds
    # the prompts asked for each pose in turn, and a turned face was refused while the
    # centre was asked for
    assert {f.code for f in fbs} >= {"pose", "wait", "ok", "skipped"}
    assert fbs[-1].done and fbs[-1].target == 3 and fbs[-1].progress == 3


def test_optional_poses_are_skipped_and_said(
    woman: tuple[EnrolmentSession, list[Feedback]],
) -> None:
    s, fbs = woman
    assert s.skipped == ["up", "down"]
    states = {pp.pose: pp.state for pp in fbs[-1].poses}
    assert states == {"frontal": "done", "left": "done", "right": "done",
                      "up": "skipped", "down": "skipped"}
    assert "up and down not seen, skipped" in s.summary()
    skipped = [f.reason for f in fbs if f.code == "skipped"]
    assert skipped == ["Skipped: FaceUnlock did not see you tilt your head a little up "
                       "(optional)", "Skipped: FaceUnlock did not see you tilt your head a "
                       "little down (optional)"]


def test_clip_without_the_pose_fails_and_names_it(clip_pipe: Pipeline, clips_dir: Path) -> None:
    """The man only looks ahead: the capture does not finish silently, it fails saying he
    must turn left."""
    s, fbs = _run(clip_pipe, clips_dir / MALE,
                  EnrolParams(anchors=3, min_face=50, pose_timeout=2.0))
    assert not s.done and s.failure_code == "missing_pose"
    assert [c.pose for c in s.captures] == ["frontal"]
    assert "turn a little to the left" in s.failure and "Nothing was saved" in s.failure
    assert fbs[-1].failed and fbs[-1].reason == s.failure
    assert {pp.pose: pp.state for pp in fbs[-1].poses}["left"] == "missing"
    # from the clip's timeline: the capture waited pose_timeout for the turn, no longer
    assert fbs[-1].code == "missing_pose"
    assert len(fbs) < 2.0 * 12.5 + 20


def test_owner_check_refuses_another_face(
    clip_pipe: Pipeline, clips_dir: Path, woman: tuple[EnrolmentSession, list[Feedback]],
) -> None:
    from faceunlock.engine import service
    from faceunlock.engine.cohort import Matcher

    owner = Matcher(woman[0].embeddings(), service.cohort(clip_pipe))
    thr = service.choose(owner, service.far_table(clip_pipe), np.zeros(0), "balanced").threshold
    s = EnrolmentSession(clip_pipe, EnrolParams(anchors=3, min_face=50, guided=False),
                         owner=owner, owner_threshold=thr)
    with VideoFileSource(clips_dir / MALE) as src:
        fbs = s.run(src)
    assert s.failure_code == "not_owner" and not s.captures
    assert fbs[-1].failed and "does not match the enrolled owner" in fbs[-1].reason


def test_calibration_of_a_guided_capture_is_held_out(
    clip_pipe: Pipeline, woman: tuple[EnrolmentSession, list[Feedback]]
) -> None:
    """The anchors of the woman's guided capture, calibrated: each is scored against the
    other poses (never its near-duplicates), and the few samples are said to be few."""

    from faceunlock.engine import service
    from faceunlock.engine.templates import Anchor, Template

    s = woman[0]
    t = Template(user="alice", model_sha256=clip_pipe.encoder.sha256)
    t.add_anchors(Anchor.new(c.embedding, c.thumbnail, quality={"pose_" + c.pose: 1.0})
                  for c in s.captures)
    m, _, genuine = service.calibration_inputs(t, clip_pipe)
    assert genuine.size == 3
    assert (genuine >= m.leave_one_out() - 1e-9).all()  # no better than leave-one-out
    ch = service.calibrate_template(t, clip_pipe, "balanced")
    assert ch.frr_samples == 3 and ch.frr_upper > 0.6
    assert any("only 3 independent sample" in w for w in ch.warnings)

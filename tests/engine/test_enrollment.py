"""Enrolment quality gates and pose guidance, on real LFW faces through the real pipeline."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.engine.enrollment import (
    EnrolmentSession,
    EnrolParams,
    classify_pose,
    head_pose,
)
from faceunlock.engine.imageio import read_image
from faceunlock.engine.pipeline import Pipeline, PipelineSettings


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline(PipelineSettings())


def _face(lfw: Path, name: str = "AJ_Cook", i: int = 1) -> np.ndarray:
    return read_image(lfw / "images" / name / f"{name}_{i:04d}.jpg")


def test_gates_give_specific_reasons(lfw_dir: Path, pipe: Pipeline) -> None:
    face = _face(lfw_dir)
    s = EnrolmentSession(pipe, EnrolParams(anchors=3))
    fb = s.offer(np.zeros_like(face))
    assert (fb.accepted, fb.code) == (False, "dark") and "light" in fb.reason
    fb = s.offer(np.full_like(face, 128))
    assert fb.code == "no_face" and "look at the camera" in fb.reason
    two = np.concatenate([face, _face(lfw_dir, "Abdullah_Gul", 13)], axis=1)
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


def test_session_completes_with_distinct_views(lfw_dir: Path, pipe: Pipeline) -> None:
    s = EnrolmentSession(pipe, EnrolParams(anchors=3))
    feedback = s.run(_face(lfw_dir, "George_W_Bush", i) for i in range(1, 10))
    assert s.done and len(s.captures) == 3
    assert feedback[-1].done
    assert s.embeddings().shape == (3, 128)
    assert s.offer(_face(lfw_dir, "George_W_Bush", 20)).code == "done"


def test_head_pose_and_classification() -> None:
    frontal = np.array([[70, 50], [60, 50], [30, 50], [40, 50], [50, 70]], float)
    yaw, pitch = head_pose(frontal)
    assert yaw == pytest.approx(0.0) and pitch == pytest.approx(20 / 30)
    turned = frontal.copy()
    turned[4, 0] = 62  # nose to the image right
    y2, _ = head_pose(turned)
    assert y2 > 0.2
    p = EnrolParams()
    assert classify_pose(0.0, pitch, pitch, p) == "frontal"
    assert classify_pose(y2, pitch, pitch, p) == "left"
    assert classify_pose(-y2, pitch, pitch, p) == "right"
    assert classify_pose(0.0, pitch + 0.3, pitch, p) == "down"
    assert classify_pose(0.0, pitch - 0.3, pitch, p) == "up"


def test_pose_plan_and_instructions(lfw_dir: Path, pipe: Pipeline) -> None:
    s = EnrolmentSession(pipe, EnrolParams(anchors=5))
    assert s.pose_plan() == ["frontal", "left", "right", "up", "down"]
    assert s.next_pose() == "frontal"
    fb = s.offer(_face(lfw_dir))
    assert fb.accepted and fb.next_pose == "left" and "left" in fb.instruction

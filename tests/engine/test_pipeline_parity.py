"""End-to-end parity with dlib-bin: same image in, descriptors within 0.01 of dlib's own."""

from __future__ import annotations

import numpy as np
import pytest

from faceunlock.engine.imageio import read_image
from faceunlock.engine.pipeline import Pipeline, PipelineSettings
from tests.fakes.faces import ParitySample

pytestmark = [pytest.mark.parity, pytest.mark.slow]


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_descriptors_match_dlib_end_to_end(parity_sample: ParitySample) -> None:
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    cnn = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    pipe = Pipeline(PipelineSettings(flip_average=False, zoom=1.0, precision="fp32"))
    dists = []
    for path in parity_sample.paths[:50]:
        img = read_image(path)
        ours = pipe.observe(img, select="all")
        for det in cnn(img, 0):
            r = det.rect
            ref = np.asarray(rec.compute_face_descriptor(img, sp(img, r)), np.float32)
            box = (r.left(), r.top(), r.right(), r.bottom())
            match = max(ours, key=lambda o: _iou(o.box, box))
            assert _iou(match.box, box) >= 0.95, path
            dists.append(float(np.linalg.norm(match.embedding - ref)))
    assert len(dists) >= (50 if parity_sample.kind == "lfw" else len(parity_sample.paths) + 1)
    assert max(dists) <= 0.01, f"max {max(dists):.4f}, mean {np.mean(dists):.4f}"

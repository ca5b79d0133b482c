"""The whole pipeline (detect, landmarks, align, encode) on the committed faces of
tests/data/faces: two people, a few poses each, so it runs on every clone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceunlock.engine.imageio import read_image
from faceunlock.engine.pipeline import Pipeline, PipelineSettings


def _embeddings(pipe: Pipeline, paths: list[Path]) -> np.ndarray:
    out = []
    for p in paths:
        obs = pipe.observe(read_image(p), select="all")
        assert len(obs) == 1, p  # one face in each crop, and it is found
        assert obs[0].embedding.shape == (128,) and obs[0].embedding.dtype == np.float32
        out.append(obs[0].embedding)
    return np.stack(out)


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_same_person_is_closer_than_the_other(face_sample: list[Path], precision: str) -> None:
    """Every pair of the same person's images is closer than every pair across the two
    people (measured: at most 0.54 against at least 0.59, with either encoder)."""
    emb = _embeddings(Pipeline(PipelineSettings(precision=precision)), face_sample)
    woman = np.array([p.name.startswith("woman-") for p in face_sample])
    assert woman.sum() >= 3 and (~woman).sum() >= 3
    d = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    same = woman[:, None] == woman[None]
    off_diagonal = ~np.eye(len(face_sample), dtype=bool)
    genuine, impostor = d[same & off_diagonal], d[~same]
    assert genuine.max() < impostor.min(), (genuine.max(), impostor.min())
    np.fill_diagonal(d, np.inf)
    assert (woman[d.argmin(1)] == woman).all()  # each image's nearest is the same person


def test_int8_stays_close_to_fp32(face_sample: list[Path]) -> None:
    a = _embeddings(Pipeline(PipelineSettings(precision="fp32")), face_sample)
    b = _embeddings(Pipeline(PipelineSettings(precision="int8")), face_sample)
    moved = np.linalg.norm(a - b, axis=1)
    assert np.median(moved) < 0.05 and moved.max() < 0.1, moved


def test_both_people_in_one_frame(faces_dir: Path, face_sample: list[Path]) -> None:
    """The whole two-person frame: both faces found at the clips' size (~80 px), each closest
    to its own person's crops."""
    pipe = Pipeline(PipelineSettings(min_face=50, max_face=160))
    obs = pipe.observe(read_image(faces_dir / "pair-00.jpg"), select="all")
    assert len(obs) == 2
    left, right = sorted(obs, key=lambda o: o.box[0])  # the woman stands on the left
    crops = Pipeline(PipelineSettings())
    emb = _embeddings(crops, face_sample)
    woman = np.array([p.name.startswith("woman-") for p in face_sample])
    for o, is_woman in ((left, True), (right, False)):
        d = np.linalg.norm(emb - o.embedding, axis=1)
        assert woman[d.argmin()] == is_woman
        assert d[woman == is_woman].mean() < d[woman != is_woman].mean()


def _webcam_frame(image: np.ndarray) -> np.ndarray:
    """A 640x480 frame with ``image`` enlarged 1.6x (faces ~150 px) at its centre."""
    import cv2

    big = cv2.resize(image, None, fx=1.6, fy=1.6, interpolation=cv2.INTER_LINEAR)
    h, w = big.shape[:2]
    fr = np.full((480, 640, 3), 100, np.uint8)
    y, x = (480 - h) // 2, (640 - w) // 2
    fr[y : y + h, x : x + w] = big
    return fr


def test_full_scan_detector_follows_the_settings() -> None:
    """dlib's whole pyramid runs the fp32 detector (dlib's boxes); a pyramid cut short by the
    app's min_face 100 / max_face 400 runs the int8 one, as the tracker and the coarse pass do,
    fallback passes included; precision fp32 keeps every detector fp32."""
    exact = Pipeline(PipelineSettings())
    assert exact.detector.path.name == "detector.onnx" and exact.detector.dlib_exact
    assert exact.fallback.small.path.name == "detector.onnx"
    app = Pipeline(PipelineSettings(min_face=100, max_face=400))
    assert not app.detector.dlib_exact
    assert {d.path.name for d in (app.detector, app.fallback.small, app.tracker, app.coarse)} == {
        "detector-int8.onnx"}
    assert (app.detector.min_face, app.detector.max_face) == (100, 400)
    fp32 = Pipeline(PipelineSettings(min_face=100, max_face=400, precision="fp32"))
    assert {d.path.name for d in (fp32.detector, fp32.tracker, fp32.coarse)} == {"detector.onnx"}


def test_app_settings_full_scan_tells_the_people_apart(face_sample: list[Path]) -> None:
    """The int8 full scan (min_face 100, max_face 400) on webcam-like frames: every face found,
    and the same person's frames closer than the other's."""
    pipe = Pipeline(PipelineSettings(min_face=100, max_face=400))
    emb = []
    for p in face_sample:
        obs = pipe.observe(_webcam_frame(read_image(p)), select="all")
        assert len(obs) == 1, p
        emb.append(obs[0].embedding)
    e = np.stack(emb)
    woman = np.array([p.name.startswith("woman-") for p in face_sample])
    d = np.linalg.norm(e[:, None] - e[None], axis=-1)
    same = woman[:, None] == woman[None]
    genuine = d[same & ~np.eye(len(face_sample), dtype=bool)]
    assert genuine.max() < d[~same].min(), (genuine.max(), d[~same].min())

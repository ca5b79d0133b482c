from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from faceunlock.engine.imageio import read_image
from faceunlock.engine.landmarks import LandmarkPredictor
from faceunlock.engine.modelfile import sidecar_path, write_sidecar
from faceunlock.errors import InputError, ModelError
from faceunlock.paths import models_dir
from tests.fakes.faces import ParitySample

MODEL = models_dir() / "landmarks5.npz"
BOX = (67, 84, 174, 191)  # roughly where LFW's and tests/data/faces' 250x250 crops put the face

needs_model = pytest.mark.skipif(not MODEL.is_file(), reason="models/landmarks5.npz not built")


@pytest.fixture(scope="module")
def predictor() -> LandmarkPredictor:
    if not MODEL.is_file():
        pytest.skip("models/landmarks5.npz not built")
    p = LandmarkPredictor()
    p.load()
    return p


@pytest.fixture(scope="module")
def dlib_faces(parity_sample: ParitySample) -> list[tuple[np.ndarray, list[tuple[int, ...]]]]:
    """(image, dlib HOG boxes) for each image of the sample (the committed faces, or the 60
    LFW images)."""
    dlib = pytest.importorskip("dlib")
    det = dlib.get_frontal_face_detector()
    out = []
    for path in parity_sample.paths:
        img = read_image(path)
        boxes: list[tuple[int, ...]] = [
            (r.left(), r.top(), r.right(), r.bottom()) for r in det(img, 1)
        ]
        out.append((img, boxes))
    return out


def _dlib_points(sp: object, img: np.ndarray, box: tuple[int, ...]) -> np.ndarray:
    import dlib

    shape = sp(img, dlib.rectangle(*box))  # type: ignore[operator]
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


@pytest.mark.parity
def test_matches_dlib_shape_predictor(
    predictor: LandmarkPredictor, dlib_faces: list[tuple[np.ndarray, list[tuple[int, ...]]]],
    parity_sample: ParitySample,
) -> None:
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    # the detector's box, plus shifted/odd-sized boxes, one hanging off the image corner
    offsets = [(0, 0, 0, 0), (-3, 5, 7, 2), (13, -4, -9, 11), (-120, -110, -100, -90)]
    devs = []
    for img, boxes in dlib_faces:
        for box in boxes:
            for off in offsets:
                b = tuple(v + o for v, o in zip(box, off, strict=True))
                ours = predictor.predict(img, b)
                assert ours.shape == (5, 2) and ours.dtype == np.float32
                devs.append(float(np.abs(ours - _dlib_points(sp, img, b)).max()))
    worst = max(devs)
    inexact = sum(d > 0 for d in devs)
    print(f"landmark parity: {len(devs)} boxes, max deviation {worst} px, {inexact} inexact")
    assert len(devs) >= 4 * (50 if parity_sample.kind == "lfw" else len(parity_sample.paths))
    assert worst <= 1.0
    # bit-exact here (0 of 264); allow a stray float-contraction difference on other builds
    assert inexact <= len(devs) // 100


@needs_model
def test_predict_many_equals_predict(predictor: LandmarkPredictor, face_sample: list[Path]
                                     ) -> None:
    boxes = np.array(
        [BOX, (60, 70, 190, 200), (0, 0, 120, 120), (200, 180, 300, 290), (67.4, 84.6, 174, 191)]
    )
    for path in face_sample[:5]:
        img = read_image(path)
        many = predictor.predict_many(img, boxes)
        assert many.shape == (len(boxes), 5, 2) and many.dtype == np.float32
        for i, b in enumerate(boxes):
            np.testing.assert_array_equal(many[i], predictor.predict(img, tuple(b)))
        assert predictor.predict_many(img, np.zeros((0, 4))).shape == (0, 5, 2)
        assert predictor.predict_many(img, []).shape == (0, 5, 2)


@needs_model
def test_points_are_plausible(predictor: LandmarkPredictor, faces_dir: Path) -> None:
    img = read_image(faces_dir / "woman-09.jpg")
    pts = predictor.predict(img, BOX)
    # image-left to image-right: right-eye outer, right-eye inner, left-eye inner, left-eye outer
    assert pts[0, 0] > pts[1, 0] > pts[3, 0] > pts[2, 0]
    assert pts[4, 1] > pts[:4, 1].max()  # nose below the eyes
    grey = img.mean(axis=2).astype(np.uint8)
    np.testing.assert_array_equal(predictor.predict(grey, BOX), predictor.predict(
        np.repeat(grey[:, :, None], 3, axis=2), BOX))


@needs_model
@pytest.mark.parametrize(
    "box",
    [
        (1, 2, 3),
        (1, 2, 3, 4, 5),
        (10, 10, 10, 50),
        (10, 50, 50, 10),
        (float("nan"), 0, 10, 10),
        (0, 0, float("inf"), 10),
        (0, 0, 1e12, 10),
        ("a", 0, 1, 1),
    ],
)
def test_bad_box(predictor: LandmarkPredictor, box: tuple[object, ...]) -> None:
    img = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(InputError):
        predictor.predict(img, box)  # type: ignore[arg-type]


@needs_model
def test_bad_boxes_and_images(predictor: LandmarkPredictor) -> None:
    img = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(InputError):
        predictor.predict_many(img, np.zeros((2, 3)))
    with pytest.raises(InputError):
        predictor.predict_many(img, [(0, 0, 10, 10), (5, 5, 5, 9)])
    with pytest.raises(InputError):
        predictor.predict(img.astype(np.float32), (0, 0, 10, 10))
    with pytest.raises(InputError):
        predictor.predict(np.zeros((50, 50, 4), np.uint8), (0, 0, 10, 10))
    # a box entirely off the image is allowed (every pixel reads 0), as in dlib
    assert predictor.predict(img, (1000, 1000, 1100, 1100)).shape == (5, 2)


def test_missing_model_is_lazy_then_model_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.npz"
    p = LandmarkPredictor(path)  # the constructor reads nothing
    with pytest.raises(ModelError) as e:
        p.predict(np.zeros((20, 20, 3), np.uint8), (0, 0, 10, 10))
    assert e.value.path == path and str(path) in str(e.value)


def _copy_model(tmp_path: Path) -> Path:
    dst = tmp_path / "landmarks5.npz"
    shutil.copyfile(MODEL, dst)
    shutil.copyfile(sidecar_path(MODEL), sidecar_path(dst))
    return dst


def _meta() -> dict[str, object]:
    meta: dict[str, object] = json.loads(sidecar_path(MODEL).read_text())
    return meta


@needs_model
def test_corrupt_model_sha_mismatch(tmp_path: Path) -> None:
    path = _copy_model(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256 mismatch") as e:
        LandmarkPredictor(path).load()
    assert e.value.path == path


@needs_model
def test_garbage_with_matching_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "landmarks5.npz"
    path.write_bytes(b"this is not a zip archive" * 10)
    write_sidecar(path, _meta())
    with pytest.raises(ModelError, match="not a readable landmarks npz") as e:
        LandmarkPredictor(path).load()
    assert str(path) in str(e.value)


@needs_model
@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a: a.pop("deltas"), "lacks arrays: deltas"),
        (lambda a: a.update(deltas=a["deltas"][:, :-1]), "'deltas' has shape"),
        (lambda a: a.update(split_thresh=a["split_thresh"].astype(np.float64)), "dtype"),
        (lambda a: a.update(format_version=np.array(7, np.int32)), "format_version"),
        (lambda a: a["split_idx1"].__setitem__((0, 0, 0), 800), "outside the 800 feature"),
        (lambda a: a["anchor_idx"].__setitem__((0, 0), 5), "outside the 5 landmarks"),
        (lambda a: a["leaf_values"].__setitem__((0, 0, 0, 0, 0), np.nan), "non-finite"),
    ],
)
def test_malformed_arrays(tmp_path: Path, mutate: object, message: str) -> None:
    with np.load(MODEL) as npz:
        arrays = {k: npz[k].copy() for k in npz.files}
    mutate(arrays)  # type: ignore[operator]
    path = tmp_path / "landmarks5.npz"
    np.savez(path, **arrays)
    write_sidecar(path, _meta())
    with pytest.raises(ModelError, match=message) as e:
        LandmarkPredictor(path).load()
    assert e.value.path == path

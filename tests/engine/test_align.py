from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceunlock.engine import align
from faceunlock.engine.align import TEMPLATE_5, chip_transform, face_chip
from faceunlock.engine.imageio import read_image
from faceunlock.errors import InputError
from tests.fakes.faces import ParitySample

CHIP_TEMPLATE = 150 * (0.25 + TEMPLATE_5) / 1.5


def test_template_landmarks_give_dlibs_half_pixel_shift() -> None:
    # landmarks exactly on the chip template: scale 1, no rotation, centre (75, 75), so chip
    # pixel q samples image pixel q + 0.5 (dlib centres the crop on size/2, not (size-1)/2)
    a = chip_transform(CHIP_TEMPLATE)
    np.testing.assert_allclose(a, [[1, 0, 0.5], [0, 1, 0.5]], atol=1e-12)


def test_transform_follows_similarity() -> None:
    ang = np.deg2rad(20)
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    pts = CHIP_TEMPLATE @ (2.0 * rot).T + [300.0, 200.0]
    a = chip_transform(pts)
    k = (150 * 2.0 - 1) / 149
    np.testing.assert_allclose(a[:, :2], k * rot, atol=1e-12)
    # chip centre (74.5, 74.5) lands on the image point of template (75, 75)
    np.testing.assert_allclose(a @ [74.5, 74.5, 1], 2.0 * rot @ [75, 75] + [300, 200])


def test_face_chip_shape_dtype_and_black_outside() -> None:
    img = np.full((200, 300, 3), 200, np.uint8)
    chip = face_chip(img, CHIP_TEMPLATE + np.array([50, 20]))
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    assert face_chip(img, CHIP_TEMPLATE, size=112).shape == (112, 112, 3)
    # entirely outside the image: all black (also through the pyramid path)
    assert not face_chip(img, CHIP_TEMPLATE + np.array([5000, 0])).any()
    assert not face_chip(img, CHIP_TEMPLATE * 5 + np.array([5000, 0])).any()
    # a flat image stays flat where the chip is inside it
    assert (face_chip(img, CHIP_TEMPLATE + np.array([50, 20]))[5:-5, 5:-5] == 200).all()
    scaled = (CHIP_TEMPLATE - 75) * 1.3 + np.array([150, 100])
    assert (face_chip(img, scaled)[5:-5, 5:-5] == 200).all()


@pytest.mark.parametrize(
    ("landmarks", "kw"),
    [
        (np.zeros((4, 2)), {}),
        (np.zeros((5, 3)), {}),
        (np.full((5, 2), np.nan), {}),
        (np.zeros((5, 2)), {}),  # all points coincide
        (CHIP_TEMPLATE, {"size": 1}),
        (CHIP_TEMPLATE, {"size": 150.0}),
        (CHIP_TEMPLATE, {"padding": -0.1}),
    ],
)
def test_bad_input(landmarks: np.ndarray, kw: dict[str, object]) -> None:
    with pytest.raises(InputError):
        face_chip(np.zeros((100, 100, 3), np.uint8), landmarks, **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- parity


@pytest.fixture(scope="module")
def dlib_models():  # type: ignore[no-untyped-def]
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    return (
        dlib,
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
        dlib.face_recognition_model_v1(frm.face_recognition_model_location()),
    )


def _cases(dlib_models, paths: list[Path]):  # type: ignore[no-untyped-def]
    """(name, image, dlib full_object_detection) for the largest face of each image, plus
    close-ups: the first images upscaled 3x and 6x (one and two pyramid levels)."""
    dlib, det, sp, _ = dlib_models
    for i, path in enumerate(paths):
        img = read_image(path)
        rects = det(img, 1)
        if not rects:
            continue
        r = max(rects, key=lambda r: r.area())
        yield path.name, img, sp(img, r)
        for scale in (3, 6) if i < 6 else (3,) if i < 12 else ():
            big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            rb = dlib.rectangle(*(v * scale for v in (r.left(), r.top(), r.right(), r.bottom())))
            yield f"{path.name}@{scale}x", big, sp(big, rb)


@pytest.mark.parity
@pytest.mark.slow
def test_chip_and_descriptor_match_dlib(dlib_models, parity_sample: ParitySample) -> None:  # type: ignore[no-untyped-def]
    dlib, _, _, net = dlib_models
    rows = []
    for name, img, shape in _cases(dlib_models, parity_sample.paths):
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        ref = np.asarray(dlib.get_face_chip(img, shape, size=150, padding=0.25))
        ours = face_chip(img, pts)
        assert ours.shape == ref.shape == (150, 150, 3)
        mad = float(np.abs(ours.astype(int) - ref.astype(int)).mean())
        d_ref = np.array(net.compute_face_descriptor(ref))
        d_ours = np.array(net.compute_face_descriptor(ours))
        dist = float(np.linalg.norm(d_ref - d_ours))
        s = align._chip_geometry(pts, 150, 0.25)[1]
        rows.append((name, align._pyramid_levels(s, 150), mad, dist))
    levels = np.array([r[1] for r in rows])
    mads = np.array([r[2] for r in rows])
    dists = np.array([r[3] for r in rows])
    for lv in sorted(set(levels.tolist())):
        m = levels == lv
        print(f"pyramid levels {lv}: n={m.sum()} mean|diff| max {mads[m].max():.4f} "
              f"descriptor distance mean {dists[m].mean():.5f} max {dists[m].max():.5f}")
    assert (levels == 0).sum() >= (50 if parity_sample.kind == "lfw" else len(parity_sample.paths))
    assert (levels == 1).sum() >= 5 and (levels == 2).sum() >= 1  # close-ups exercised
    bad = [r for r in rows if r[2] > 1.0 or r[3] > 0.01]
    assert not bad, bad

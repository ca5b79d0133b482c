from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from faceunlock.engine.encoder import FaceEncoder, get_encoder
from faceunlock.engine.modelfile import load_sidecar, write_sidecar
from faceunlock.errors import InputError, ModelError
from faceunlock.paths import models_dir
from tests.fakes.faces import ParitySample


@pytest.fixture(scope="module")
def model_path() -> Path:
    p = models_dir() / "encoder.onnx"
    if not p.is_file():
        pytest.skip(f"{p} missing: run `python -m faceunlock.training.dlib_resnet`")
    return p


@pytest.fixture(scope="module")
def encoder(model_path: Path) -> FaceEncoder:
    return FaceEncoder(model_path, threads=2)


def _random_chips(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 150, 150, 3), dtype=np.uint8)


# -- parity with dlib ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dlib_chips_and_descriptors(parity_sample: ParitySample) -> tuple[np.ndarray, np.ndarray]:
    """Aligned chips made by dlib (at least 20 from LFW images, or one from each committed
    face), and dlib's descriptors."""
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    recogniser = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    chips: list[np.ndarray] = []
    for path in parity_sample.paths:
        img = dlib.load_rgb_image(str(path))
        dets = detector(img, 1)
        if not dets:
            continue
        # The largest face: LFW images (and the face crops) are centred on one person.
        det = max(dets, key=lambda r: r.area())
        shape = predictor(img, det)
        chips.append(np.asarray(dlib.get_face_chip(img, shape, 150, 0.25), dtype=np.uint8))
        if len(chips) >= 24:
            break
    want = 20 if parity_sample.kind == "lfw" else len(parity_sample.paths)
    if len(chips) < want:
        pytest.fail(f"only {len(chips)} faces found in {len(parity_sample.paths)} images")
    arr = np.stack(chips)
    ref = np.stack([np.asarray(recogniser.compute_face_descriptor(c), dtype=np.float64)
                    for c in arr])
    return arr, ref


@pytest.mark.parity
def test_parity_with_dlib(encoder: FaceEncoder,
                          dlib_chips_and_descriptors: tuple[np.ndarray, np.ndarray]) -> None:
    chips, ref = dlib_chips_and_descriptors
    assert chips.shape[0] >= 9
    got = encoder.embed(chips)
    assert got.shape == (chips.shape[0], 128) and got.dtype == np.float32
    diff = np.abs(got.astype(np.float64) - ref)
    dist = np.linalg.norm(got.astype(np.float64) - ref, axis=1)
    assert diff.max() <= 1e-4, f"max abs diff {diff.max():.3g}"
    assert dist.max() <= 1e-4, f"max distance {dist.max():.3g}"
    # Not L2-normalised, as documented.
    norms = np.linalg.norm(got, axis=1)
    assert np.all(np.abs(norms - 1.0) > 1e-3)


# -- behaviour ------------------------------------------------------------------------------


def test_shapes_and_metadata(encoder: FaceEncoder) -> None:
    chips = _random_chips(3)
    out = encoder.embed(chips)
    assert out.shape == (3, 128) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    single = encoder.embed(chips[1])
    assert single.shape == (1, 128)
    np.testing.assert_allclose(single[0], out[1], atol=1e-5)
    empty = encoder.embed(np.zeros((0, 150, 150, 3), np.uint8))
    assert empty.shape == (0, 128) and empty.dtype == np.float32
    assert encoder.dim == 128
    # dlib publishes 0.6; the sidecar carries the threshold fitted on LFW DevTrain
    assert encoder.threshold == pytest.approx(encoder.meta["default_threshold"])
    assert 0.55 < encoder.threshold < 0.65
    assert len(encoder.sha256) == 64 and encoder.sha256 == encoder.meta["sha256"]
    assert encoder.meta["metric"] == "euclidean"


def test_batching_matches_one_by_one(model_path: Path) -> None:
    enc = FaceEncoder(model_path, threads=2)
    chips = _random_chips(11, seed=1)
    enc.batch_size = 4  # 4 + 4 + 3
    batched = enc.embed(chips)
    single = np.concatenate([enc.embed(c) for c in chips])
    np.testing.assert_allclose(batched, single, atol=1e-5, rtol=0)
    enc.batch_size = 16
    np.testing.assert_allclose(enc.embed(chips), single, atol=1e-5, rtol=0)


def test_non_contiguous_input(encoder: FaceEncoder) -> None:
    chips = _random_chips(2, seed=2)
    big = np.zeros((2, 150, 160, 3), np.uint8)
    big[:, :, :150] = chips
    view = big[:, :, :150]  # same values, strided view
    assert not view.flags.c_contiguous
    np.testing.assert_allclose(encoder.embed(view), encoder.embed(chips), atol=1e-6)


@pytest.mark.parametrize(
    ("chips", "message"),
    [
        (np.zeros((1, 150, 150, 3), np.float32), "dtype uint8"),
        (np.zeros((150, 150, 3), np.int64), "dtype uint8"),
        (np.zeros((1, 112, 112, 3), np.uint8), "got (1, 112, 112, 3)"),
        (np.zeros((1, 150, 150), np.uint8), "got (1, 150, 150)"),
        (np.zeros((150, 150, 4), np.uint8), "got (150, 150, 4)"),
        (np.zeros((1, 3, 150, 150), np.uint8), "got (1, 3, 150, 150)"),
        (np.zeros((2, 1, 150, 150, 3), np.uint8), "got (2, 1, 150, 150, 3)"),
        ([[0, 1]], "numpy array"),
    ],
)
def test_input_validation(encoder: FaceEncoder, chips: object, message: str) -> None:
    with pytest.raises(InputError, match="chips must") as ei:
        encoder.embed(chips)  # type: ignore[arg-type]
    assert message in str(ei.value)


# -- corrupt / missing models --------------------------------------------------------------


def _copy_model(model_path: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    p = dest / "encoder.onnx"
    shutil.copyfile(model_path, p)
    shutil.copyfile(model_path.with_name(model_path.name + ".json"),
                    p.with_name(p.name + ".json"))
    return p


def test_copied_model_loads(model_path: Path, tmp_path: Path) -> None:
    p = _copy_model(model_path, tmp_path)
    assert FaceEncoder(p, threads=1).embed(_random_chips(1)).shape == (1, 128)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_model_sha256(model_path: Path, tmp_path: Path, damage: str) -> None:
    p = _copy_model(model_path, tmp_path)
    data = bytearray(p.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 3:]
    p.write_bytes(bytes(data))
    enc = FaceEncoder(p)
    with pytest.raises(ModelError) as ei:
        enc.embed(_random_chips(1))
    assert "sha256" in str(ei.value)
    assert str(p) in str(ei.value)
    assert ei.value.path == p


def test_not_onnx_with_matching_sidecar(model_path: Path, tmp_path: Path) -> None:
    p = _copy_model(model_path, tmp_path)
    meta = load_sidecar(p)
    p.write_bytes(b"this is not an ONNX model\n" * 64)
    write_sidecar(p, meta)  # sha256 now matches the garbage
    with pytest.raises(ModelError, match="not a valid ONNX model") as ei:
        FaceEncoder(p).embed(_random_chips(1))
    assert str(p) in str(ei.value)


def test_missing_model(tmp_path: Path) -> None:
    p = tmp_path / "nope" / "encoder.onnx"
    with pytest.raises(ModelError, match="not found") as ei:
        FaceEncoder(p).embed(_random_chips(1))
    assert str(p) in str(ei.value)


def test_lazy_loading(tmp_path: Path) -> None:
    p = tmp_path / "missing.onnx"
    enc = FaceEncoder(p)  # must not touch the file
    assert not enc.loaded
    assert enc.path == p
    # Input validation happens before loading, too.
    with pytest.raises(InputError):
        enc.embed(np.zeros((1, 10, 10, 3), np.uint8))
    assert not enc.loaded
    with pytest.raises(ModelError, match="not found"):
        enc.embed(_random_chips(1))
    assert not enc.loaded


def test_default_path_and_cache(model_path: Path) -> None:
    enc = FaceEncoder()
    assert enc.path == models_dir() / "encoder.onnx"
    assert not enc.loaded
    a = get_encoder()
    assert get_encoder() is a
    assert get_encoder(model_path) is a
    assert a.embed(_random_chips(1)).shape == (1, 128)

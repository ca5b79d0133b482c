from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
frm = pytest.importorskip("face_recognition_models")
ort = pytest.importorskip("onnxruntime")

from faceunlock.engine.modelfile import sha256_file  # noqa: E402
from faceunlock.paths import models_dir  # noqa: E402
from faceunlock.training.dlib.mmod import (  # noqa: E402
    build_torch,
    convert,
    default_dat_path,
    parse_mmod,
)


@pytest.fixture(scope="module")
def dat_path() -> Path:
    p = default_dat_path()
    if not p.is_file():
        pytest.skip(f"{p} missing")
    return p


@pytest.fixture(scope="module")
def converted(dat_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert(dat_path, tmp_path_factory.mktemp("mmod") / "detector.onnx")


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"image": x})[0])


def test_parse_reads_the_whole_file(dat_path: Path) -> None:
    m = parse_mmod(dat_path)
    assert m.window == (80, 80)
    assert m.nms_iou == pytest.approx(0.338276, abs=1e-6) and m.nms_covered == 1.0
    assert (m.pyramid_padding, m.pyramid_outer_padding) == (10, 11)
    assert m.mean == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert [c.weight.shape for c in m.convs] == [
        (16, 3, 5, 5), (32, 16, 5, 5), (32, 32, 5, 5), (45, 32, 5, 5), (45, 45, 5, 5),
        (45, 45, 5, 5), (1, 45, 9, 9)]
    assert [c.relu for c in m.convs] == [True] * 6 + [False]


def test_conversion_is_deterministic(dat_path: Path, converted: Path, tmp_path: Path) -> None:
    again = convert(dat_path, tmp_path / "detector.onnx")
    assert sha256_file(again) == sha256_file(converted)
    meta = json.loads(converted.with_name("detector.onnx.json").read_text())
    assert meta["sha256"] == sha256_file(converted)
    assert meta["licence"] == "CC0-1.0"
    assert meta["window"] == {"width": 80, "height": 80}
    assert meta["nms"]["iou"] == pytest.approx(0.338, abs=1e-3)
    assert meta["input"]["layout"] == "NCHW" and meta["input"]["dtype"] == "float32"
    assert meta["default_adjust_threshold"] == 0.0


def test_torch_and_onnxruntime_agree(dat_path: Path, converted: Path) -> None:
    m = parse_mmod(dat_path)
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 97, 131)).astype(np.float32)
    with torch.no_grad():
        ref = build_torch(m)(torch.from_numpy(x)).numpy()
    got = _run_onnx(converted, x)
    assert got.shape == ref.shape == (1, 1, 9, 13)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_optimised_graph_equals_plain_dlib_stack(dat_path: Path) -> None:
    """Folding the normalisation, zero-padding 45->48 channels and the depthwise final conv
    do not change the function dlib computes on its normalised input."""
    m = parse_mmod(dat_path)
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 64, 72)).astype(np.float32)
    mean = np.asarray(m.mean, np.float32)[None, :, None, None]
    with torch.no_grad():
        plain = build_torch(m, fold_input=False, optimise=False)(
            torch.from_numpy((x - mean) / 256.0)).numpy()
        fast = build_torch(m)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(fast, plain, atol=1e-4, rtol=0)


def test_shipped_model_matches_a_fresh_conversion(converted: Path) -> None:
    shipped = models_dir() / "detector.onnx"
    if not shipped.is_file():
        pytest.skip(f"{shipped} missing")
    x = np.random.default_rng(2).uniform(0, 255, (1, 3, 80, 96)).astype(np.float32)
    np.testing.assert_allclose(_run_onnx(shipped, x), _run_onnx(converted, x), atol=1e-5)

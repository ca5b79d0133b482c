from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceunlock.engine.modelfile import load_model_bytes, sidecar_path
from faceunlock.paths import models_dir
from faceunlock.training.dlib import shape as dlib_shape
from faceunlock.training.dlib.format import DlibFormatError


@pytest.fixture(scope="module")
def dat_path() -> Path:
    pytest.importorskip("face_recognition_models")
    path = dlib_shape.default_dat_path()
    if not path.is_file():
        pytest.skip("shape_predictor_5_face_landmarks.dat is not installed")
    return path


@pytest.mark.slow
def test_conversion_is_deterministic(dat_path: Path, tmp_path: Path) -> None:
    a = dlib_shape.convert(dat_path, tmp_path / "a" / "landmarks5.npz")
    b = dlib_shape.convert(dat_path, tmp_path / "b" / "landmarks5.npz")
    assert a.read_bytes() == b.read_bytes()
    assert sidecar_path(a).read_bytes() == sidecar_path(b).read_bytes()
    _, meta = load_model_bytes(a)  # sha256 in the sidecar matches
    assert meta["licence"] == "CC0-1.0"
    assert (meta["cascades"], meta["trees_per_cascade"], meta["tree_depth"]) == (15, 500, 4)
    assert len(meta["output"]["points"]) == 5
    with np.load(a, allow_pickle=False) as npz:
        assert npz["leaf_values"].shape == (15, 500, 16, 5, 2)
        assert npz["leaf_values"].dtype == np.float32
        assert npz["split_idx1"].shape == (15, 500, 15)
        assert npz["deltas"].shape == (15, 800, 2)
        assert npz["format_version"].shape == ()
    shipped = models_dir() / "landmarks5.npz"
    if shipped.is_file():  # the committed model is exactly what the converter produces
        assert shipped.read_bytes() == a.read_bytes()
        assert json.loads(sidecar_path(shipped).read_text()) == meta


def test_npz_bytes_stable() -> None:
    arrays = {"b": np.arange(3, dtype="<f4"), "a": np.asarray(1, dtype="<i4")}
    blob = dlib_shape.npz_bytes(arrays)
    assert blob == dlib_shape.npz_bytes(dict(reversed(arrays.items())))
    import io

    with np.load(io.BytesIO(blob)) as npz:
        assert npz.files == ["a", "b"]
        assert npz["a"].shape == ()


def test_rejects_truncated_and_wrong_files(dat_path: Path) -> None:
    data = dat_path.read_bytes()
    with pytest.raises(DlibFormatError):
        dlib_shape.parse_shape_predictor(data[:5000], "cut.dat")
    with pytest.raises(DlibFormatError, match="version"):
        dlib_shape.parse_shape_predictor(b"\x01\x02" + data[2:100], "v2.dat")
    with pytest.raises(DlibFormatError, match="trailing"):
        dlib_shape.parse_shape_predictor(data + b"\x00", "extra.dat")

"""The int8 encoder (models/encoder-int8.onnx) and how the pipeline picks an encoder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from faceunlock.engine.encoder import FaceEncoder
from faceunlock.engine.imageio import read_image
from faceunlock.engine.modelfile import load_sidecar, sha256_file
from faceunlock.engine.pipeline import Pipeline, PipelineSettings, encoder_path
from faceunlock.errors import InputError
from faceunlock.paths import models_dir

INT8 = models_dir() / "encoder-int8.onnx"
FP32 = models_dir() / "encoder.onnx"


def test_encoder_path_choice(tmp_path: Path) -> None:
    assert encoder_path(models_dir(), "int8") == INT8
    assert encoder_path(models_dir(), "fp32") == FP32
    assert encoder_path(models_dir(), "auto") == INT8
    # a directory with only a (fine-tuned) fp32 export: auto falls back to it
    (tmp_path / "encoder.onnx").write_bytes(b"")
    assert encoder_path(tmp_path, "auto") == tmp_path / "encoder.onnx"
    assert encoder_path(tmp_path, "int8") == tmp_path / "encoder-int8.onnx"
    with pytest.raises(InputError, match="precision"):
        encoder_path(models_dir(), "fp16")
    assert Pipeline(PipelineSettings()).encoder.path == INT8
    assert Pipeline(PipelineSettings(precision="fp32")).encoder.path == FP32


def test_sidecar_names_its_source_and_fits() -> None:
    meta = load_sidecar(INT8)
    assert meta["sha256"] == sha256_file(INT8)
    assert meta["quantization"]["fp32_sha256"] == sha256_file(FP32)
    assert meta["licence"] == "CC0-1.0"
    assert meta["input"] == load_sidecar(FP32)["input"]
    assert "pairsDevTrain" in meta["quantization"]["calibration_data"]
    assert meta["far_table"]["impostor_pairs"] > 1_000_000
    assert 0.3 < meta["default_threshold"] < 0.8


def test_int8_descriptors_stay_close_to_fp32(lfw_devtest_sample: list[Path]) -> None:
    """Same chips through both encoders: quantization moves a descriptor by a small fraction
    of the same-person threshold, and keeps who-is-closest the same."""
    pipe = Pipeline(PipelineSettings(precision="fp32", flip_average=False, zoom=1.0))
    chips = []
    for p in lfw_devtest_sample[:40]:
        obs = pipe.observe(read_image(p), select="center", fallback_center=True)
        chips.append(obs[0].chip)
    x = np.stack(chips)
    a = FaceEncoder(FP32, threads=2).embed(x)
    b = FaceEncoder(INT8, threads=2).embed(x)
    moved = np.linalg.norm(a - b, axis=1)
    assert np.median(moved) < 0.05 and moved.max() < 0.1, moved
    da = np.linalg.norm(a[:, None] - a[None], axis=-1)
    db = np.linalg.norm(b[:, None] - b[None], axis=-1)
    np.fill_diagonal(da, np.inf)
    np.fill_diagonal(db, np.inf)
    assert (da.argmin(1) == db.argmin(1)).mean() >= 0.95


def test_corrupt_int8_is_named(tmp_path: Path) -> None:
    shutil.copy(INT8, tmp_path / INT8.name)
    shutil.copy(INT8.with_name(INT8.name + ".json"), tmp_path)
    data = bytearray((tmp_path / INT8.name).read_bytes())
    data[len(data) // 3] ^= 0x55
    (tmp_path / INT8.name).write_bytes(bytes(data))
    from faceunlock.errors import ModelError

    with pytest.raises(ModelError, match=r"encoder-int8\.onnx"):
        FaceEncoder(tmp_path / INT8.name).load()


def test_int8_detector_serves_tracker_and_coarse_pass_only() -> None:
    det8 = models_dir() / "detector-int8.onnx"
    meta = load_sidecar(det8)
    assert meta["sha256"] == sha256_file(det8)
    assert meta["quantization"]["fp32_sha256"] == sha256_file(models_dir() / "detector.onnx")
    pipe = Pipeline(PipelineSettings(coarse_first=True))
    assert pipe.detector.path == models_dir() / "detector.onnx"  # full scans: dlib-exact
    assert pipe.tracker.path == det8 and pipe.coarse.path == det8
    fp32 = Pipeline(PipelineSettings(precision="fp32"))
    assert fp32.tracker.path == models_dir() / "detector.onnx"


def test_int8_detector_finds_the_faces_fp32_finds(lfw_devtest_sample: list[Path]) -> None:
    """Same faces, boxes within a pyramid step, on webcam-like frames (the tracker's and the
    coarse pass's inputs)."""
    import cv2

    from faceunlock.engine.detector import FaceDetector
    from faceunlock.engine.pipeline import _iou

    a = FaceDetector(models_dir() / "detector.onnx", downscale=2.0, max_face=400)
    b = FaceDetector(models_dir() / "detector-int8.onnx", downscale=2.0, max_face=400)
    found = 0
    for p in lfw_devtest_sample[:30]:
        big = cv2.resize(read_image(p), None, fx=1.8, fy=1.8)  # faces ~200 px
        frame = np.full((480, 640, 3), 110, np.uint8)
        frame[15:465, 95:545] = big[:450, :450]
        da, db = a.detect(frame), b.detect(frame)
        assert len(da) == len(db), p
        for d in da:
            assert max(_iou(d.box, e.box) for e in db) > 0.5, p
        found += len(da)
    assert found >= 25

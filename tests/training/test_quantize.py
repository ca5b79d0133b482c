"""faceunlock.training.quantize: deterministic int8 export, usable by the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from faceunlock.engine.encoder import FaceEncoder
from faceunlock.engine.modelfile import load_sidecar
from faceunlock.paths import models_dir
from faceunlock.training import quantize

pytestmark = pytest.mark.slow


def test_quantize_is_deterministic_and_loads(lfw_dir: Path, tmp_path: Path) -> None:
    src = models_dir() / "encoder.onnx"
    a = quantize.quantize(src, tmp_path / "a" / "encoder-int8.onnx", lfw_dir, n_images=16,
                          log=lambda s: None)
    b = quantize.quantize(src, tmp_path / "b" / "encoder-int8.onnx", lfw_dir, n_images=16,
                          log=lambda s: None)
    assert a.read_bytes() == b.read_bytes()
    meta = load_sidecar(a)
    assert meta["quantization"]["calibration_data"].startswith("first 16 distinct images")
    assert meta["far_table_note"]  # the copied table is marked until refitted
    chips = np.random.default_rng(0).integers(0, 256, (2, 150, 150, 3), dtype=np.uint8)
    emb = FaceEncoder(a, threads=1).embed(chips)
    ref = FaceEncoder(src, threads=1).embed(chips)
    assert emb.shape == (2, 128) and np.isfinite(emb).all()
    assert np.linalg.norm(emb - ref, axis=1).max() < 0.2


def test_detector_quantization_is_deterministic(lfw_dir: Path, tmp_path: Path) -> None:
    src = models_dir() / "detector.onnx"
    a = quantize.quantize_detector(src, tmp_path / "a.onnx", lfw_dir, n_images=6,
                                   log=lambda s: None)
    b = quantize.quantize_detector(src, tmp_path / "b.onnx", lfw_dir, n_images=6,
                                   log=lambda s: None)
    assert a.read_bytes() == b.read_bytes()
    meta = load_sidecar(a)
    assert meta["quantization"]["used_for"].startswith("the coarse pass")
    # unchanged output: neither the model nor its sidecar is rewritten
    before = (tmp_path / "a.onnx.json").stat().st_mtime_ns
    quantize.quantize_detector(src, a, lfw_dir, n_images=6, log=lambda s: None)
    assert (tmp_path / "a.onnx.json").stat().st_mtime_ns == before


def test_shipped_int8_detector_is_reproduced(lfw_dir: Path, tmp_path: Path) -> None:
    """`python -m faceunlock.training.quantize` makes the shipped detector-int8.onnx byte for
    byte (its calibration inputs must not drift with pipeline changes)."""
    from faceunlock.engine.modelfile import sha256_file

    shipped = models_dir() / "detector-int8.onnx"
    made = quantize.quantize_detector(models_dir() / "detector.onnx",
                                      tmp_path / "detector-int8.onnx", lfw_dir,
                                      log=lambda s: None)
    assert sha256_file(made) == sha256_file(shipped)
    assert load_sidecar(made) | {"file": None} == load_sidecar(shipped) | {"file": None}


def test_int8_detector_keeps_its_first_convolution_and_score_head_float() -> None:
    """The shipped int8 detector convolves the raw image in float (no QuantizeLinear on the
    input), quantizes every convolution between, and computes the scores in float."""
    import onnx

    src = models_dir() / "detector.onnx"
    assert quantize.float_nodes(src) == ["/0/Conv", "/12/conv/Conv", "/12/ReduceSum", "/12/Add"]
    g = onnx.load(str(models_dir() / "detector-int8.onnx")).graph
    name = g.input[0].name
    assert [n.op_type for n in g.node if name in n.input] == ["Conv"]
    producers = {o: n for n in g.node for o in n.output}
    convs = [n for n in g.node if n.op_type == "Conv"]
    assert len(convs) == 7
    for c in convs[1:-1]:  # activations and weights come through DequantizeLinear
        assert producers[c.input[0]].op_type == "DequantizeLinear", c.name
        assert producers[c.input[1]].op_type == "DequantizeLinear", c.name
    # the scores: Add(ReduceSum(float depthwise conv), bias), no QuantizeLinear after the head
    out = producers[g.output[0].name]
    assert out.op_type == "Add"
    assert producers[out.input[0]].op_type == "ReduceSum"
    assert producers[producers[out.input[0]].input[0]].op_type == "Conv"
    assert convs[-1].input[1] in {i.name for i in g.initializer}  # float weights

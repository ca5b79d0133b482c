"""The MediaPipe conversion's own steps, without TensorFlow: the engine form of a converted
graph (NHWC input, one concatenated output, sigmoid where asked) and its canonical bytes
(the same graph named and ordered differently gives the same file). The TFLite parity of
the committed models is tests/engine/test_mesh.py; the full conversion needs the throw-away
environment of the module's doc and runs only where tf2onnx and tflite2onnx are installed
and FACEUNLOCK_MEDIAPIPE_WHEEL names the wheel."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from faceunlock.engine.modelfile import load_sidecar  # noqa: E402
from faceunlock.errors import InputError, ModelError  # noqa: E402
from faceunlock.paths import models_dir  # noqa: E402
from faceunlock.training import convert_mediapipe as cm  # noqa: E402

SPEC = cm.Spec(key="toy", member="toy.tflite", out_name="toy.onnx", size=8, tool="tf2onnx",
               outputs=(("pts", 4), ("flag", 1)), sigmoid=("flag",), output_name="out",
               output_meaning="", crop_rule="", note="toy")
W1 = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
W2 = np.array([[1.0], [-2.0], [0.5]], np.float32)


def _toy(seed: int, nchw: bool) -> object:
    """pts = mean(image) @ W1, flag = mean(image) @ W2, via two identical ReduceMean nodes;
    names and the order of nodes and initialisers depend on ``seed``."""
    h = onnx.helper
    rng = np.random.default_rng(seed)
    tag = f"x{seed}_"
    axes = [2, 3] if nchw else [1, 2]
    nodes = [
        h.make_node("ReduceMean", ["in"], [tag + "m1"], axes=axes, keepdims=0, name=tag + "r1"),
        h.make_node("ReduceMean", ["in"], [tag + "m2"], axes=axes, keepdims=0, name=tag + "r2"),
        h.make_node("MatMul", [tag + "m1", tag + "w1"], ["pts"], name=tag + "mm1"),
        h.make_node("MatMul", [tag + "m2", tag + "w2"], ["flag"], name=tag + "mm2"),
    ]
    order = rng.permutation(2)
    nodes = [nodes[i] for i in order] + [nodes[2 + i] for i in order]
    inits = [onnx.numpy_helper.from_array(W1, tag + "w1"),
             onnx.numpy_helper.from_array(W2, tag + "w2")][:: 1 if seed % 2 else -1]
    shape = [1, 3, 8, 8] if nchw else [1, 8, 8, 3]
    g = h.make_graph(nodes, "toy", [h.make_tensor_value_info("in", 1, shape)],
                     [h.make_tensor_value_info("flag", 1, [1, 1]),
                      h.make_tensor_value_info("pts", 1, [1, 4])], initializer=inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 13)])


@pytest.mark.parametrize("nchw", [False, True])
def test_finish_gives_the_engine_form(nchw: bool) -> None:
    data = cm.finish(SPEC, _toy(1, nchw))
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "image" and inp.shape == [1, 8, 8, 3]
    assert out.name == "out" and out.shape == [1, 5]
    x = np.random.default_rng(0).random((1, 8, 8, 3), dtype=np.float32)
    (y,) = sess.run(None, {"image": x})
    m = x.mean(axis=(1, 2))
    np.testing.assert_allclose(y[0, :4], (m @ W1)[0], rtol=1e-5)
    np.testing.assert_allclose(y[0, 4], 1 / (1 + np.exp(-(m @ W2)[0, 0])), rtol=1e-5)


def test_finish_is_canonical() -> None:
    a, b = cm.finish(SPEC, _toy(1, True)), cm.finish(SPEC, _toy(2, True))
    assert a == b


def test_finish_refuses_unexpected_graphs() -> None:
    bad = cm.Spec(**{**SPEC.__dict__, "size": 16})
    with pytest.raises(ModelError, match="input has shape"):
        cm.finish(bad, _toy(1, False))
    other = cm.Spec(**{**SPEC.__dict__, "outputs": (("pts", 4), ("score", 1))})
    with pytest.raises(ModelError, match="outputs"):
        cm.finish(other, _toy(1, False))


def test_wheel_is_checked(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        cm.read_member(tmp_path / "none.whl", cm.MESH.member)
    fake = tmp_path / "mediapipe.whl"
    fake.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    with pytest.raises(InputError, match="sha256"):
        cm.read_member(fake, cm.MESH.member)
    with pytest.raises(InputError, match="cannot read"):
        cm.read_member(fake, cm.MESH.member, check_sha=False)


def test_smooth_inputs_are_fixed() -> None:
    x = cm.smooth_inputs(64)
    assert x.shape == (2, 64, 64, 3) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    np.testing.assert_array_equal(x, cm.smooth_inputs(64))


WHEEL = os.environ.get("FACEUNLOCK_MEDIAPIPE_WHEEL", "")


@pytest.mark.slow
@pytest.mark.skipif(not WHEEL, reason="FACEUNLOCK_MEDIAPIPE_WHEEL not set")
def test_conversion_reproduces_the_committed_models(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    pytest.importorskip("tflite2onnx")
    done = cm.convert(Path(WHEEL), tmp_path)
    for out, diff in done:
        assert diff <= cm.PARITY_TOL
        assert out.read_bytes() == (models_dir() / out.name).read_bytes()
        assert load_sidecar(out)["sha256"] == load_sidecar(models_dir() / out.name)["sha256"]

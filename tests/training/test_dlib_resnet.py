from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
frm = pytest.importorskip("face_recognition_models")

from faceunlock.training.dlib import resnet as dlib_resnet  # noqa: E402


@pytest.fixture(scope="module")
def dat_path() -> Path:
    p = Path(frm.face_recognition_model_location())
    if not p.is_file():
        pytest.skip(f"{p} missing")
    return p


def test_parse_matches_architecture(dat_path: Path) -> None:
    w = dlib_resnet.parse_dat(dat_path)
    assert w.input_size == (150, 150)
    np.testing.assert_allclose(w.means, (122.782, 117.001, 104.298), atol=1e-3)
    assert w.distance_threshold == pytest.approx(0.6)
    convs = [r for r in w.records if isinstance(r, dlib_resnet.ConvRecord)]
    assert len(convs) == 29
    for c in convs:
        k = c.weight.shape[2]
        assert c.padding == ((0, 0) if c.stride == (2, 2) else (k // 2, k // 2))
    module = dlib_resnet.DlibFaceResNet(w)
    n_params = sum(p.numel() for p in module.parameters())
    assert 5_500_000 < n_params < 5_700_000
    shapes = [(b.body_shape, b.short_shape, b.out_shape) for b in module.blocks]
    # 256x3x3 block output plus a 128x4x4 shortcut gives 256x4x4.
    assert ((256, 3, 3), (128, 4, 4), (256, 4, 4)) in shapes
    assert module.final_shape == (256, 2, 2)


def test_conversion_is_deterministic_and_matches_torch(dat_path: Path, tmp_path: Path) -> None:
    a = dlib_resnet.convert(dat_path, tmp_path / "a" / "encoder.onnx")
    b = dlib_resnet.convert(dat_path, tmp_path / "b" / "encoder.onnx")
    da, db = a.read_bytes(), b.read_bytes()
    assert hashlib.sha256(da).hexdigest() == hashlib.sha256(db).hexdigest()
    assert da == db
    meta = json.loads(a.with_name("encoder.onnx.json").read_text())
    assert meta["sha256"] == hashlib.sha256(da).hexdigest()
    assert meta["licence"] == "CC0-1.0"
    assert meta["input"]["dtype"] == "uint8" and meta["input"]["layout"] == "NHWC"
    assert meta["output"]["dim"] == 128 and meta["default_threshold"] == 0.6
    assert meta["chip"] == {"size": 150, "padding": 0.25}

    import onnx
    import onnxruntime as ort

    model = onnx.load_from_string(da)
    assert model.opset_import[0].version == 17
    ops = {n.op_type for n in model.graph.node}
    assert "BatchNormalization" not in ops and "Constant" not in ops
    assert sum(n.op_type == "Conv" for n in model.graph.node) == 29

    module = dlib_resnet.build_module(dat_path)
    chips = np.random.default_rng(3).integers(0, 256, (5, 150, 150, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = module(torch.from_numpy(chips)).numpy()
    sess = ort.InferenceSession(da, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"chips": chips})[0]
    assert got.shape == (5, 128)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    # Dynamic batch: one chip at a time gives the same.
    one = sess.run(None, {"chips": chips[:1]})[0]
    np.testing.assert_allclose(one[0], got[0], atol=1e-5, rtol=0)


def test_truncated_dat_is_rejected(dat_path: Path, tmp_path: Path) -> None:
    from faceunlock.training.dlib.format import DlibFormatError

    bad = tmp_path / "bad.dat"
    bad.write_bytes(dat_path.read_bytes()[:1_000_000])
    with pytest.raises(DlibFormatError, match="unexpected end of file"):
        dlib_resnet.parse_dat(bad)
    extra = tmp_path / "extra.dat"
    extra.write_bytes(dat_path.read_bytes() + b"\x00")
    with pytest.raises(DlibFormatError, match="unexpected bytes"):
        dlib_resnet.parse_dat(extra)


def test_module_from_the_runtime_onnx_equals_the_dat(dat_path: Path, tmp_path: Path) -> None:
    from faceunlock.paths import models_dir

    from_dat = dlib_resnet.build_module(dat_path)
    from_onnx = dlib_resnet.build_module(models_dir() / "encoder.onnx")
    a, b = from_dat.state_dict(), from_onnx.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [bl.out_shape for bl in from_dat.blocks] == [bl.out_shape for bl in from_onnx.blocks]
    # a fine-tuned export reads back as the module that wrote it
    with torch.no_grad():
        from_onnx.fc.weight.mul_(1.5)
    path = tmp_path / "tuned.onnx"
    path.write_bytes(dlib_resnet.export_onnx_bytes(from_onnx))
    again = dlib_resnet.build_module(path)
    assert torch.equal(again.fc.weight, from_onnx.fc.weight)
    assert not torch.equal(again.fc.weight, from_dat.fc.weight)


def test_module_from_a_broken_onnx_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "encoder.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(dlib_resnet.DlibFormatError, match=r"encoder\.onnx"):
        dlib_resnet.build_module(bad)
    from faceunlock.paths import models_dir

    with pytest.raises(dlib_resnet.DlibFormatError, match="not a dlib"):
        dlib_resnet.build_module(models_dir() / "detector.onnx")

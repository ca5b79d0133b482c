"""Export of a trainer checkpoint to a runtime models directory (faceunlock.training.export)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
frm = pytest.importorskip("face_recognition_models")

from faceunlock import cli  # noqa: E402
from faceunlock.engine.encoder import FaceEncoder  # noqa: E402
from faceunlock.engine.imageio import read_image  # noqa: E402
from faceunlock.engine.modelfile import REQUIRED_KEYS, sha256_file  # noqa: E402
from faceunlock.engine.pipeline import Pipeline, PipelineSettings  # noqa: E402
from faceunlock.errors import InputError, ModelError  # noqa: E402
from faceunlock.training import export as ex  # noqa: E402
from faceunlock.training.dlib import resnet as dlib_resnet  # noqa: E402
from faceunlock.training.trainer import TrainConfig  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _finetuned_module() -> dlib_resnet.DlibFaceResNet:
    """dlib's network with slightly changed weights, standing in for a trained one."""
    m = dlib_resnet.build_module(dlib_resnet.default_dat_path())
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        m.fc.weight.add_(torch.randn(m.fc.weight.shape, generator=gen) * 1e-3)
        m.blocks[-1].conv2.weight.mul_(1.01)
    return m


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A checkpoint in the layout :meth:`Trainer.checkpoint` writes."""
    m = _finetuned_module()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5)
    path = tmp_path_factory.mktemp("run") / "best.pt"
    torch.save({"epoch": 3, "model": m.state_dict(), "loss": {}, "optimizer": opt.state_dict(),
                "best": 0.9, "config": TrainConfig().to_dict(), "classes": ["a", "b"]}, path)
    return path


@pytest.fixture(scope="module")
def exported(ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models")
    enc = ex.export_checkpoint(ckpt, out, log=lambda s: None)
    assert enc == out / "encoder.onnx"
    return out


def test_onnx_matches_torch(exported):
    import onnxruntime as ort

    chips = ex.parity_chips(3, seed=7)
    sess = ort.InferenceSession(str(exported / "encoder.onnx"),
                                providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"chips": chips})
    with torch.no_grad():
        want = _finetuned_module()(torch.from_numpy(chips)).numpy()
    assert got.shape == (3, 128) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    # the fine-tuned weights made it into the file: differs from the shipped model
    ref = ort.InferenceSession(str(ex.models_dir() / "encoder.onnx"),
                               providers=["CPUExecutionProvider"])
    assert np.abs(ref.run(None, {"chips": chips})[0] - got).max() > 1e-4


def test_sidecar_runtime_format(exported, ckpt):
    meta = json.loads((exported / "encoder.onnx.json").read_text())
    for key in (*REQUIRED_KEYS, "metric", "default_threshold", "output", "chip", "opset"):
        assert key in meta, key
    assert meta["sha256"] == sha256_file(exported / "encoder.onnx")
    assert meta["file"] == "encoder.onnx"
    assert meta["source"].startswith("fine-tuned from ") and str(ckpt) in meta["source"]
    assert meta["licence"] == "CC0-1.0 base weights"
    assert meta["metric"] == "euclidean"
    assert meta["input"]["shape"] == ["N", 150, 150, 3] and meta["input"]["dtype"] == "uint8"
    assert meta["default_threshold"] == 0.6  # not fitted without --pairs
    assert meta["checkpoint"] == {"file": "best.pt", "sha256": sha256_file(ckpt), "epoch": 3}
    assert "far_table" not in meta
    for name in ("detector.onnx", "landmarks5.npz"):
        assert (exported / name).read_bytes() == (ex.models_dir() / name).read_bytes()
        assert (exported / f"{name}.json").is_file()


def test_runtime_encoder_loads(exported):
    enc = FaceEncoder(exported / "encoder.onnx", threads=1)
    e = enc.embed(ex.parity_chips(2))
    assert e.shape == (2, 128) and e.dtype == np.float32 and np.isfinite(e).all()
    assert enc.threshold == 0.6


def test_export_is_deterministic(ckpt, exported, tmp_path):
    ex.export_checkpoint(ckpt, tmp_path, log=lambda s: None)
    assert (tmp_path / "encoder.onnx").read_bytes() == (exported / "encoder.onnx").read_bytes()
    assert (tmp_path / "encoder.onnx.json").read_text() == \
        (exported / "encoder.onnx.json").read_text()


def test_parity_failure_raises(ckpt):
    module, _ = ex.build_from_checkpoint(ex.load_checkpoint(ckpt))
    blob = ex.onnx_bytes(module, "x")
    with torch.no_grad():
        module.fc.weight.mul_(1.1)
    with pytest.raises(ModelError, match="differ"):
        ex.check_parity(module, blob, ex.parity_chips(1))


def test_bad_checkpoints(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ex.export_checkpoint(tmp_path / "nope.pt", tmp_path / "out")
    torch.save({"epoch": 0}, tmp_path / "x.pt")
    with pytest.raises(InputError, match="no 'model'"):
        ex.export_checkpoint(tmp_path / "x.pt", tmp_path / "out")
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "y.pt")
    with pytest.raises(InputError, match="does not match"):
        ex.export_checkpoint(tmp_path / "y.pt", tmp_path / "out")
    with pytest.raises(InputError, match="--lfw-root"):
        ex.export_checkpoint(tmp_path / "y.pt", tmp_path / "out", pairs=tmp_path / "p.txt")


def test_pipeline_uses_exported_dir(exported, lfw_dir):
    img = read_image(lfw_dir / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    pipe = Pipeline(PipelineSettings(models=str(exported), threads=1))
    obs = pipe.observe(img, select="center", fallback_center=True)
    assert len(obs) == 1 and obs[0].embedding.shape == (128,)
    assert pipe.encoder.path == exported / "encoder.onnx"
    assert pipe.encoder.sha256 == sha256_file(exported / "encoder.onnx")


def _tiny_lfw_lists(lfw: Path, tmp: Path) -> tuple[Path, Path]:
    people = [ln for ln in (lfw / "peopleDevTrain.txt").read_text().splitlines()[1:]
              if ln.strip() and int(ln.split()[1]) <= 2][:48]
    pf = tmp / "people.txt"
    pf.write_text(f"{len(people)}\n" + "\n".join(people) + "\n")
    lines = (lfw / "pairsDevTrain.txt").read_text().splitlines()[1:]
    same = [ln for ln in lines if len(ln.split()) == 3][:3]
    diff = [ln for ln in lines if len(ln.split()) == 4][:3]
    pp = tmp / "pairs.txt"
    pp.write_text("3\n" + "\n".join(same + diff) + "\n")
    return pf, pp


def test_cli_export_calibrated_and_eval(ckpt, lfw_dir, tmp_path, capsys):
    people, pairs = _tiny_lfw_lists(lfw_dir, tmp_path)
    out = tmp_path / "models"
    rc = cli.main(["export", str(ckpt), "--out", str(out), "--far-people", str(people),
                   "--lfw-root", str(lfw_dir), "--pairs", str(pairs)])
    assert rc == 0
    assert f"--model {out}" in capsys.readouterr().out
    meta = json.loads((out / "encoder.onnx.json").read_text())
    assert meta["far_table"]["impostor_pairs"] >= 1000
    assert meta["far_table"]["source"].startswith("people.txt")
    fit = meta["threshold_fit"]
    assert fit["pairs"] == "pairs.txt" and 0.0 <= fit["accuracy"] <= 1.0
    assert meta["default_threshold"] == round(fit["threshold"], 4)
    assert meta["sha256"] == sha256_file(out / "encoder.onnx")
    rc = cli.main(["eval", "lfw", "--pairs", str(pairs), "--images", str(lfw_dir / "images"),
                   "--model", str(out), "--threads", "1", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["model_sha256"] == meta["sha256"] and res["pairs"] == 6


def test_cli_without_torch(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    for name in ("faceunlock.training.trainer", "faceunlock.training.export"):
        monkeypatch.delitem(sys.modules, name, raising=False)  # imported afresh by the verb
    for argv in (["train", "--config", "x.toml"], ["export", "x.pt", "--out", "d"]):
        assert cli.main(argv) != 0
        assert "pip install -e '.[train]'" in capsys.readouterr().err

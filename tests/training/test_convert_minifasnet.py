"""MiniFASNet conversion: the network built from the state-dict keys, onnxruntime matching
torch within 1e-4 on random and real crops, and byte-identical files on every run (equal to
the committed models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceunlock.engine.modelfile import load_sidecar, sha256_file
from faceunlock.paths import models_dir, shared_dir

torch = pytest.importorskip("torch")
cm = pytest.importorskip("faceunlock.training.convert_minifasnet")

WEIGHTS = shared_dir() / "models" / "minifasnet"

pytestmark = pytest.mark.skipif(not WEIGHTS.is_dir(), reason="../shared/models/minifasnet absent")


@pytest.mark.parametrize("key", ["v2", "v1se"])
def test_onnx_matches_torch_on_random_and_real_crops(key: str, one_torch_thread: None) -> None:
    src, _, scale = cm.MODELS[key]
    net = cm.build(WEIGHTS / src)
    real = cm.real_crops(scale)
    assert len(real) >= 3
    data = cm.export_onnx_bytes(net, "test")
    x = cm.parity_inputs(real)
    assert cm.max_diff(net, data, x) <= 1e-4
    with torch.no_grad():
        p = net(torch.from_numpy(real)).numpy()
    assert abs(p.sum(axis=1) - 1).max() < 1e-5  # softmax in the graph
    assert (p[:, 1] > 0.5).mean() >= 0.5  # the webcam clip is mostly judged real


def test_conversion_is_deterministic_and_reproduces_the_committed_models(
    tmp_path: Path, one_torch_thread: None
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    cm.convert(WEIGHTS, a, check_real=False)
    cm.convert(WEIGHTS, b, check_real=False)
    for _, name, scale in cm.MODELS.values():
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / f"{name}.json").read_bytes() == (b / f"{name}.json").read_bytes()
        meta = load_sidecar(a / name)
        assert meta["sha256"] == sha256_file(models_dir() / name)
        assert meta["input"]["crop"]["scale"] == scale and meta["licence"] == "Apache-2.0"


def test_state_dict_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    state = cm.load_state(WEIGHTS / cm.MODELS["v2"][0])
    state.pop("prob.weight")
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(Exception, match="prob"):
        cm.build(tmp_path / "bad.pth")

"""MiniFASNet conversion: the network built from the state-dict keys, onnxruntime matching
torch within 1e-4 on random and real crops, byte-identical files on every run of one machine,
and the committed models' graph with weights equal to within float32 rounding (torch's
batch-norm folding rounds differently on CPUs with other vector units, so the committed bytes
are not reproducible across machines, only the network is)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceunlock.engine.modelfile import load_sidecar
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
        _assert_same_network(a / name, models_dir() / name)
        assert meta["input"]["crop"]["scale"] == scale and meta["licence"] == "Apache-2.0"


def _assert_same_network(made: Path, committed: Path) -> None:
    """Same nodes, inputs and outputs; initialisers equal within float32 rounding."""
    from onnx import load, numpy_helper

    m, c = load(str(made)), load(str(committed))
    assert [n.SerializeToString() for n in m.graph.node] == [
        n.SerializeToString() for n in c.graph.node
    ]
    assert m.graph.input == c.graph.input and m.graph.output == c.graph.output
    mi = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    ci = {i.name: numpy_helper.to_array(i) for i in c.graph.initializer}
    assert mi.keys() == ci.keys()
    for k, v in mi.items():
        assert v.dtype == ci[k].dtype and v.shape == ci[k].shape, k
        np.testing.assert_allclose(v, ci[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_state_dict_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    state = cm.load_state(WEIGHTS / cm.MODELS["v2"][0])
    state.pop("prob.weight")
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(Exception, match="prob"):
        cm.build(tmp_path / "bad.pth")

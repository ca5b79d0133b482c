from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceunlock.errors import InputError
from faceunlock.evaluation import lfw


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def test_view1_parse(tmp_path: Path) -> None:
    f = _write(tmp_path / "p.txt", "2\nA\t1\t2\nB 3 4\nA 1 C 2\nB 1 D 5\n")
    ps = lfw.read_pairs(f)
    assert ps.pairs[0] == ("A/A_0001.jpg", "A/A_0002.jpg")
    assert ps.pairs[3] == ("B/B_0001.jpg", "D/D_0005.jpg")
    assert ps.same.tolist() == [True, True, False, False]
    assert ps.n_folds == 1
    assert ps.images()[:3] == ["A/A_0001.jpg", "A/A_0002.jpg", "B/B_0003.jpg"]


def test_view2_folds(tmp_path: Path) -> None:
    lines = ["3 1"]
    for k in range(3):
        lines += [f"P{k} 1 2", f"P{k} 1 Q{k} 1"]
    ps = lfw.read_pairs(_write(tmp_path / "p.txt", "\n".join(lines) + "\n"))
    assert ps.n_folds == 3
    assert ps.fold.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    "text,msg",
    [
        ("", "empty"),
        ("x\n", "first line"),
        ("2\nA 1 2\n", "header promises"),
        ("1\nA 1 B 2\nA 1 2\n", "out of order"),
        ("1\nA x 2\nA 1 B 2\n", "not an LFW pair"),
    ],
)
def test_bad_pairs(tmp_path: Path, text: str, msg: str) -> None:
    with pytest.raises(InputError, match=msg):
        lfw.read_pairs(_write(tmp_path / "p.txt", text))


def test_ten_fold_fits_threshold_on_other_folds() -> None:
    rng = np.random.default_rng(1)
    n_folds, per = 10, 30
    same = np.tile(np.r_[np.ones(per, bool), np.zeros(per, bool)], n_folds)
    fold = np.repeat(np.arange(n_folds), 2 * per)
    pairs = [("a", "b")] * same.size
    d = np.where(same, rng.normal(0.4, 0.08, same.size), rng.normal(0.8, 0.08, same.size))
    res = lfw.evaluate(lfw.PairSet(pairs, same, fold), d)
    assert res["protocol"] == "10-fold"
    assert len(res["fold_accuracies"]) == 10
    assert 0.97 < res["accuracy"] <= 1.0
    assert res["roc_auc"] > 0.99


def test_view1_needs_a_threshold() -> None:
    ps = lfw.PairSet([("a", "b")] * 2, np.array([True, False]), np.zeros(2, np.int64))
    with pytest.raises(InputError, match="fit-pairs"):
        lfw.evaluate(ps, np.array([0.1, 0.9]))
    res = lfw.evaluate(ps, np.array([0.1, 0.9]), default_threshold=0.6)
    assert res["accuracy"] == 1.0 and res["protocol"] == "view1-default-threshold"

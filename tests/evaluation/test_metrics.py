from __future__ import annotations

import numpy as np
import pytest

from faceunlock.errors import InputError
from faceunlock.evaluation import metrics


def _brute_auc(d: np.ndarray, s: np.ndarray) -> float:
    pos, neg = d[s], d[~s]
    total = 0.0
    for p in pos:
        for n in neg:
            total += 1.0 if p < n else 0.5 if p == n else 0.0
    return total / (len(pos) * len(neg))


def _brute_best_acc(d: np.ndarray, s: np.ndarray) -> float:
    cands = np.r_[d.min() - 1, d, d.max() + 1]
    return max(np.mean((d <= t) == s) for t in cands)


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = np.round(rng.normal(size=60), 1)  # rounding creates ties
    s = rng.random(60) < 0.5
    assert metrics.roc_auc(d, s) == pytest.approx(_brute_auc(d, s), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_reaches_best_accuracy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = rng.random(80) < 0.5
    d = np.where(s, rng.normal(0.4, 0.1, 80), rng.normal(0.7, 0.1, 80))
    thr = metrics.best_threshold(d, s)
    assert metrics.accuracy(d, s, thr) == pytest.approx(_brute_best_acc(d, s))


def test_perfectly_separated() -> None:
    d = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    s = np.array([True, True, True, False, False])
    assert metrics.roc_auc(d, s) == 1.0
    rate, _thr = metrics.eer(d, s)
    assert rate == 0.0
    assert metrics.accuracy(d, s, metrics.best_threshold(d, s)) == 1.0
    tar, t = metrics.tar_at_far(d, s, 1e-3)
    assert tar == 1.0 and 0.3 <= t < 0.8


def test_eer_symmetric_case() -> None:
    # genuine 0..9, impostor 5..14: at threshold 7, FRR = 2/10 (8, 9) and FAR = 3/10 (5,6,7)
    d = np.r_[np.arange(10), np.arange(5, 15)].astype(float)
    s = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    rate, thr = metrics.eer(d, s)
    assert 0.2 <= rate <= 0.3
    assert 6.0 <= thr <= 8.0


def test_tar_at_far_respects_target() -> None:
    rng = np.random.default_rng(0)
    s = np.r_[np.ones(500, bool), np.zeros(5000, bool)]
    d = np.where(s, rng.normal(0.4, 0.1, s.size), rng.normal(0.9, 0.1, s.size))
    tar, thr = metrics.tar_at_far(d, s, 1e-3)
    far = np.mean(d[~s] <= thr)
    assert far <= 1e-3
    assert tar == pytest.approx(np.mean(d[s] <= thr))


def test_bad_input() -> None:
    with pytest.raises(InputError, match="differ in length"):
        metrics.roc_auc(np.zeros(3), np.zeros(2, bool))
    with pytest.raises(InputError, match="both genuine and impostor"):
        metrics.roc_auc(np.zeros(3), np.ones(3, bool))
    with pytest.raises(InputError, match="NaN"):
        metrics.accuracy(np.array([np.nan]), np.array([True]), 0.5)

"""Verification metrics on distance scores (smaller distance = more similar).

All functions take ``distances``: (N,) float and ``same``: (N,) bool, where ``same[i]`` says
pair ``i`` shows one person. A pair is *accepted* when ``distance <= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceunlock.errors import InputError


def _check(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64).ravel()
    s = np.asarray(same, dtype=bool).ravel()
    if d.shape != s.shape:
        raise InputError(f"distances {d.shape} and labels {s.shape} differ in length")
    if d.size == 0:
        raise InputError("no pairs to evaluate")
    if not np.all(np.isfinite(d)):
        raise InputError("distances contain NaN or infinity")
    return d, s


@dataclass(frozen=True)
class Roc:
    """ROC over every distinct threshold, sorted by increasing threshold.

    thresholds: (M,) float64; far, tar: (M,) float64 (fraction of impostor / genuine pairs
    with distance <= threshold).
    """

    thresholds: np.ndarray
    far: np.ndarray
    tar: np.ndarray


def roc(distances: np.ndarray, same: np.ndarray) -> Roc:
    d, s = _check(distances, same)
    n_pos = int(s.sum())
    n_neg = int((~s).sum())
    if n_pos == 0 or n_neg == 0:
        raise InputError("ROC needs both genuine and impostor pairs")
    order = np.argsort(d, kind="mergesort")
    d_sorted = d[order]
    s_sorted = s[order]
    tp = np.cumsum(s_sorted)
    fp = np.cumsum(~s_sorted)
    # keep the last index of each run of equal distances
    last = np.r_[d_sorted[1:] != d_sorted[:-1], True]
    thr = np.r_[-np.inf, d_sorted[last]]
    tar = np.r_[0.0, tp[last] / n_pos]
    far = np.r_[0.0, fp[last] / n_neg]
    return Roc(thresholds=thr, far=far, tar=tar)


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC: P(genuine distance < impostor distance), ties count one half."""
    d, s = _check(distances, same)
    pos = d[s]
    neg = d[~s]
    if pos.size == 0 or neg.size == 0:
        raise InputError("AUC needs both genuine and impostor pairs")
    # Mann-Whitney U with average ranks (ties handled exactly)
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(allv.size, dtype=np.float64)
    sorted_v = allv[order]
    i = 0
    n = allv.size
    while i < n:
        j = i
        while j + 1 < n and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    r_pos = ranks[: pos.size].sum()
    u = r_pos - pos.size * (pos.size + 1) / 2.0  # count of (pos > neg) pairs
    return float(1.0 - u / (pos.size * neg.size))


def eer(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold: where FAR equals FRR (linear interpolation)."""
    r = roc(distances, same)
    frr = 1.0 - r.tar
    diff = r.far - frr  # increasing from -1 to +1
    k = int(np.searchsorted(diff, 0.0))
    if k == 0:
        return float(r.far[0]), float(r.thresholds[1])
    a, b = diff[k - 1], diff[k]
    t = 0.0 if b == a else float(-a / (b - a))
    rate = float(r.far[k - 1] + t * (r.far[k] - r.far[k - 1]))
    thr_lo = r.thresholds[k - 1] if np.isfinite(r.thresholds[k - 1]) else r.thresholds[k]
    thr = float(thr_lo + t * (r.thresholds[k] - thr_lo))
    return rate, thr


def tar_at_far(distances: np.ndarray, same: np.ndarray, target_far: float) -> tuple[float, float]:
    """Highest TAR with FAR <= target_far, and the threshold giving it."""
    r = roc(distances, same)
    ok = np.nonzero(r.far <= target_far)[0]
    k = int(ok[-1])
    return float(r.tar[k]), float(r.thresholds[k])


def accuracy(distances: np.ndarray, same: np.ndarray, threshold: float) -> float:
    d, s = _check(distances, same)
    return float(np.mean((d <= threshold) == s))


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising accuracy; midpoint between neighbouring distances.

    Among equally good thresholds the middle of the widest-accuracy plateau's first run is
    taken, which keeps the choice stable.
    """
    d, s = _check(distances, same)
    order = np.argsort(d, kind="mergesort")
    ds = d[order]
    ss = s[order]
    n_neg = int((~s).sum())
    # accept the first i pairs (i = 0..N): correct = genuine among them + impostors after
    tp = np.r_[0, np.cumsum(ss)]
    fp = np.r_[0, np.cumsum(~ss)]
    correct = tp + (n_neg - fp)
    # only cut between distinct values
    valid = np.r_[True, ds[1:] != ds[:-1], True]
    correct = np.where(valid, correct, -1)
    i = int(np.argmax(correct))
    if i == 0:
        return float(ds[0] - 1e-6)
    if i == ds.size:
        return float(ds[-1] + 1e-6)
    return float((ds[i - 1] + ds[i]) / 2.0)

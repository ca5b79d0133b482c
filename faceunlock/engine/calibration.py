"""Threshold calibration: the model's impostor distribution (FAR table) and the user's genuine
distances, turned into a threshold for a security level.

FAR table
    Fitted once per model on LFW DevTrain (every cross-identity pair of its 9,525 images, about
    45 million comparisons; see ``benchmarks/fit_far_table.py``) and shipped in the encoder's
    sidecar as ``far_table``: for each per-comparison FAR target, the Euclidean distance at
    which that fraction of impostor comparisons is accepted. A target is *empirical* when at
    least ``MIN_TAIL_COUNT`` impostor pairs lie below it; otherwise it is *extrapolated* from a
    straight-line fit of log10(FAR) against distance over the measured lower tail, and marked
    so. LFW pairs are not independent (the same faces recur), so the table is an estimate.

Decision rule and per-attempt FAR
    A frame's score is the smallest distance from any face in it to any of the M anchors. An
    attempt accepts when k of the last n frames score at or below the threshold. Frames of one
    impostor are strongly correlated (the same face), so no independence across frames is
    assumed: per-attempt FAR <= per-frame FAR <= M x per-comparison FAR (union bound over
    anchors). A security level names a per-attempt target; the per-comparison target is
    that divided by M.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceunlock.errors import InputError

FAR_TARGETS: tuple[float, ...] = (1e-3, 1e-4, 1e-5, 1e-6)
MIN_TAIL_COUNT = 25
#: below this many independent genuine samples the false-reject estimate is called rough
MIN_FRR_SAMPLES = 20

#: per-attempt false-accept targets of the security levels
SECURITY_LEVELS: dict[str, float] = {"convenient": 1e-3, "balanced": 1e-4, "secure": 1e-5}


@dataclass(frozen=True)
class FarEntry:
    far: float
    threshold: float
    method: str  # "empirical" or "extrapolated"
    count: int  # impostor pairs at or below the threshold in the fitting set

    def to_json(self) -> dict[str, Any]:
        return {
            "far": self.far,
            "threshold": round(self.threshold, 6),
            "method": self.method,
            "count": self.count,
        }


@dataclass(frozen=True)
class Histogram:
    """Distances binned at fixed width: bin i covers ``[start + i*step, start + (i+1)*step)``.

    counts: (B,) int64; pairs: how many distances were binned (the sum of counts unless some
    fell outside the range). Shipped in the sidecar's ``far_table`` as ``impostor_histogram``
    and ``genuine_histogram`` (LFW DevTrain), for the calibration plot.
    """

    start: float
    step: float
    counts: tuple[int, ...]
    pairs: int = 0

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Histogram:
        try:
            counts = tuple(int(c) for c in obj["counts"])
            h = cls(float(obj["start"]), float(obj["step"]), counts, int(obj.get("pairs", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"malformed histogram: {e}") from e
        if not counts or h.step <= 0 or any(c < 0 for c in counts):
            raise InputError("malformed histogram: needs counts >= 0 and a positive step")
        return h

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "step": self.step,
            "counts": list(self.counts),
            "pairs": self.pairs,
        }

    def centres(self) -> np.ndarray:
        """(B,) float64 bin centres (distances)."""
        return self.start + self.step * (np.arange(len(self.counts), dtype=np.float64) + 0.5)

    def density(self) -> np.ndarray:
        """(B,) float64 probability density (integrates to 1 over the binned range)."""
        c = np.asarray(self.counts, np.float64)
        total = c.sum()
        return c / (total * self.step) if total > 0 else c

    def quantile(self, q: float) -> float:
        """Approximate distance below which a fraction ``q`` of the binned pairs lies."""
        c = np.cumsum(np.asarray(self.counts, np.float64))
        if c[-1] <= 0:
            return self.start
        i = int(np.searchsorted(c, q * c[-1]))
        return self.start + self.step * (min(i, len(self.counts) - 1) + 1)


@dataclass(frozen=True)
class FarTable:
    """Per-comparison FAR -> distance threshold, sorted by decreasing FAR.

    impostor_histogram/genuine_histogram: the fitting set's distance distributions, when the
    sidecar has them (older sidecars do not: None)."""

    entries: tuple[FarEntry, ...]
    impostor_pairs: int = 0
    source: str = ""
    tail_fit: tuple[float, float] | None = None  # log10 FAR = a + b * distance
    impostor_histogram: Histogram | None = None
    genuine_histogram: Histogram | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FarTable:
        try:
            entries = tuple(
                FarEntry(
                    float(e["far"]), float(e["threshold"]), str(e["method"]), int(e.get("count", 0))
                )
                for e in obj["entries"]
            )
            fit = obj.get("tail_fit")
            tail = (float(fit[0]), float(fit[1])) if fit else None
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"malformed FAR table: {e}") from e
        if not entries:
            raise InputError("malformed FAR table: no entries")
        hists = {
            k: Histogram.from_json(obj[k]) if obj.get(k) else None
            for k in ("impostor_histogram", "genuine_histogram")
        }
        return cls(
            tuple(sorted(entries, key=lambda x: -x.far)),
            int(obj.get("impostor_pairs", 0)),
            str(obj.get("source", "")),
            tail,
            hists["impostor_histogram"],
            hists["genuine_histogram"],
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "entries": [e.to_json() for e in self.entries],
            "impostor_pairs": self.impostor_pairs,
            "source": self.source,
            "min_tail_count": MIN_TAIL_COUNT,
        }
        if self.tail_fit:
            out["tail_fit"] = [round(self.tail_fit[0], 6), round(self.tail_fit[1], 6)]
        if self.impostor_histogram is not None:
            out["impostor_histogram"] = self.impostor_histogram.to_json()
        if self.genuine_histogram is not None:
            out["genuine_histogram"] = self.genuine_histogram.to_json()
        return out

    def threshold_for(self, far: float) -> float:
        """Distance giving per-comparison ``far``: log-linear interpolation between entries,
        and the tail fit (or the last segment) beyond them."""
        if far <= 0:
            raise InputError("FAR target must be positive")
        xs = np.log10([e.far for e in self.entries])[::-1]  # increasing
        ys = np.asarray([e.threshold for e in self.entries])[::-1]
        lf = math.log10(far)
        if xs[0] <= lf <= xs[-1] and len(xs) > 1:
            return float(np.interp(lf, xs, ys))
        if self.tail_fit and self.tail_fit[1] > 0:
            a, b = self.tail_fit
            return (lf - a) / b
        if len(xs) == 1:
            return float(ys[0])
        i, j = (0, 1) if lf < xs[0] else (-2, -1)
        slope = (ys[j] - ys[i]) / (xs[j] - xs[i])
        return float(ys[i] + slope * (lf - xs[i]))


def fit_far_table(
    impostor: np.ndarray,
    targets: Sequence[float] = FAR_TARGETS,
    source: str = "",
    min_count: int = MIN_TAIL_COUNT,
) -> FarTable:
    """Fit a FAR table from impostor distances (1-D, any order).

    Empirical quantiles where at least ``min_count`` impostor pairs support them; otherwise
    extrapolated with a least-squares line through (distance, log10 FAR) over the last 1.5
    decades of the measured lower tail (down to the smallest FAR with ``min_count`` pairs).
    log FAR is concave there for light-tailed distributions, so a local straight line
    overestimates FAR further out, which gives a stricter (safer) threshold.
    """
    d = np.sort(np.asarray(impostor, np.float64).ravel())
    n = d.size
    if n < 1000:
        raise InputError(f"need at least 1000 impostor distances to fit a FAR table, got {n}")
    # tail fit points: FAR levels from 1e-2 to the smallest supported one
    lo_far = min_count / n
    hi_far = min(1e-2, lo_far * 10**1.5)
    levels = np.logspace(math.log10(hi_far), math.log10(lo_far), 25)
    pts_d = np.asarray([d[max(math.ceil(f * n) - 1, 0)] for f in levels])
    pts_l = np.log10(levels)
    b, a = np.polyfit(pts_d, pts_l, 1) if pts_d.size >= 2 else (0.0, 0.0)
    tail = (float(a), float(b)) if b > 0 else None
    entries = []
    for far in sorted(targets, reverse=True):
        k = math.floor(far * n + 1e-9)  # pairs allowed below the threshold
        if k >= min_count:
            thr = float(d[k - 1] + d[k]) / 2.0 if k < n else float(d[-1])
            entries.append(FarEntry(far, thr, "empirical", k))
        elif tail is not None:
            thr = (math.log10(far) - tail[0]) / tail[1]
            thr = min(thr, float(d[k]))  # never admit more pairs than measured
            entries.append(FarEntry(far, thr, "extrapolated", int(np.sum(d <= thr))))
        else:
            raise InputError(f"cannot estimate FAR {far:g}: tail fit failed")
    return FarTable(tuple(entries), n, source, tail)


@dataclass(frozen=True)
class ThresholdChoice:
    """The result of calibrating one user at one security level."""

    level: str
    threshold: float
    per_attempt_far: float
    per_comparison_far: float
    expected_frr: float  # per-frame false-reject estimate from the user's genuine distances
    genuine: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    #: the score scale of ``threshold``: ``raw`` distances or ``asnorm`` cohort-normalised
    #: scores (see :mod:`faceunlock.engine.cohort`)
    scoring: str = "raw"
    #: the enrolment-time look-alike check (``service.lookalike_check``), when a cohort exists
    lookalikes: dict[str, Any] = field(default_factory=dict)
    #: how many genuine samples ``expected_frr`` rests on, and its 95 % upper bound
    frr_samples: int = 0
    frr_upper: float = float("nan")

    def frr_words(self) -> str:
        """The false-reject estimate for a person: never a bare "0 %" (with n samples and no
        failure the rate can still be up to about 3/n), and "rough" with few samples."""
        n = self.frr_samples
        if n == 0 or math.isnan(self.expected_frr):
            return "how often it misses you is not measured yet"
        k = round(self.expected_frr * n)
        upper = f"{self.frr_upper:.0%}"
        if k == 0:
            text = f"it recognised you in all {n} samples (may still miss up to {upper})"
        else:
            text = f"it missed you in {k} of {n} samples ({self.expected_frr:.0%}, up to {upper})"
        return text

    def to_json(self) -> dict[str, Any]:
        out = {
            "level": self.level,
            "threshold": round(self.threshold, 6),
            "per_attempt_far": self.per_attempt_far,
            "per_comparison_far": self.per_comparison_far,
            # None: not measured (no independent samples yet)
            "expected_frr": None if math.isnan(self.expected_frr) else round(self.expected_frr, 6),
            "genuine": self.genuine,
            "warnings": list(self.warnings),
            "scoring": self.scoring,
            "frr_samples": self.frr_samples,
            "frr_upper": None if math.isnan(self.frr_upper) else round(self.frr_upper, 6),
        }
        if self.lookalikes:
            out["lookalikes"] = self.lookalikes
        return out


def per_comparison_target(level: str, n_anchors: int) -> tuple[float, float]:
    """(per-attempt FAR, per-comparison FAR) of a security level with ``n_anchors`` anchors."""
    if level not in SECURITY_LEVELS:
        raise InputError(f"security level {level!r} is not one of {', '.join(SECURITY_LEVELS)}")
    attempt = SECURITY_LEVELS[level]
    return attempt, attempt / max(n_anchors, 1)


def anchor_genuine_distances(anchors: np.ndarray) -> np.ndarray:
    """Leave-one-out scores: for each anchor, its smallest distance to the other anchors.

    anchors: (M, D) float32 with M >= 2 -> (M,) float64.
    """
    a = np.asarray(anchors, np.float64)
    if a.ndim != 2 or a.shape[0] < 2:
        raise InputError(f"need at least 2 anchors of shape (M, D), got {a.shape}")
    dm = np.linalg.norm(a[:, None, :] - a[None, :, :], axis=2)
    np.fill_diagonal(dm, np.inf)
    return np.asarray(dm.min(axis=1))


def scores_to_anchors(embeddings: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Frame scores: the smallest distance of each embedding to any anchor.

    embeddings: (N, D), anchors: (M, D) -> (N,) float64.
    """
    e = np.asarray(embeddings, np.float64)
    a = np.asarray(anchors, np.float64)
    if e.size == 0:
        return np.zeros(0)
    if e.ndim != 2 or a.ndim != 2 or e.shape[1] != a.shape[1]:
        raise InputError(f"shape mismatch: embeddings {e.shape}, anchors {a.shape}")
    d2 = (e * e).sum(1)[:, None] + (a * a).sum(1)[None, :] - 2.0 * e @ a.T
    return np.asarray(np.sqrt(np.maximum(d2, 0.0)).min(axis=1))


def choose_threshold(
    far_table: FarTable,
    n_anchors: int,
    genuine: np.ndarray,
    level: str = "balanced",
) -> ThresholdChoice:
    """Threshold for ``level``; expected FRR and warnings from the user's genuine scores.

    genuine: (G,) scores of the user that are independent of the anchors they are scored
    against: live frames, or anchors scored against the anchors of other poses (never
    leave-one-out scores between anchors taken a moment apart, which are near-duplicates and
    would promise a 0 % false-reject rate). The threshold comes from the FAR table only: the
    user's own data is never allowed to loosen it, it only predicts the false-reject rate,
    with its 95 % upper bound (``frr_upper``) and a warning when fewer than
    :data:`MIN_FRR_SAMPLES` samples support it.
    """
    attempt, comparison = per_comparison_target(level, n_anchors)
    thr = far_table.threshold_for(comparison)
    g = np.asarray(genuine, np.float64).ravel()
    warnings: list[str] = []
    stats: dict[str, float] = {}
    upper = float("nan")
    if g.size:
        frr = float(np.mean(g > thr))
        upper = frr_upper_bound(int(np.sum(g > thr)), int(g.size))
        if g.size < MIN_FRR_SAMPLES:
            warnings.append(
                f"The false-reject estimate rests on only {g.size} independent sample(s), so "
                f"it is rough (the true rate could be up to {upper:.0%}). “Check with the "
                "camera” (Recalibrate) measures it on you now."
            )
        stats = {
            "count": float(g.size),
            "median": float(np.median(g)),
            "p90": float(np.percentile(g, 90)),
            "max": float(g.max()),
        }
        if frr > 0.3:
            warnings.append(
                f"about {frr:.0%} of your frames score above the threshold ({thr:.3f}); "
                "unlock will often need a second try. Re-enrol in the light you usually sit in, "
                "facing the camera, or add an appearance (e.g. with glasses)."
            )
        if stats["median"] > thr:
            warnings.append(
                "most of your frames do not match your own anchors at this level: enrolment "
                "looks poor (bad light, a different person, or a partly hidden face). "
                "Re-enrol, or choose a less strict security level."
            )
    else:
        frr = float("nan")
        warnings.append(
            "No independent samples of your face yet, so how often you would not be "
            "recognised is unknown: “Check with the camera” (Recalibrate) measures it."
        )
    if n_anchors < 3:
        warnings.append(f"only {n_anchors} anchor(s); enrol at least 5 for reliable unlock")
    return ThresholdChoice(
        level, float(thr), attempt, comparison, frr, stats, tuple(warnings),
        frr_samples=int(g.size), frr_upper=upper,
    )


def frr_upper_bound(failures: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate seen ``failures`` times in ``n``
    trials (``n`` = 0: 1.0). With no failure it is ``1 - (1 - confidence) ** (1 / n)``
    (about 3/n)."""
    if n <= 0:
        return 1.0
    if failures >= n:
        return 1.0
    alpha = 1.0 - confidence

    def cdf(p: float) -> float:  # P(X <= failures) for X ~ Binomial(n, p)
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(failures + 1))

    lo, hi = failures / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if cdf(mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi

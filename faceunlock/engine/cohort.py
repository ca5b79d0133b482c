"""Cohort score normalisation: scores that mean the same thing for every face.

Why
    A raw distance of 0.42 is an easy reject for most pairs of strangers, but a near-certain
    accept for two people whose faces the encoder places close together (people of some
    demographic groups, or faces filmed by the same camera in the same light). A threshold
    fitted on one population then admits far more impostors in another.

What
    The shipped cohort (``models/cohort-<encoder>.npz``) holds one mean embedding per
    reference identity. For a face ``x`` we take its ``k`` nearest cohort distances and their
    mean ``mu(x)`` and standard deviation ``sd(x)``: how close a typical look-alike stranger
    comes to this face. A comparison of probe ``p`` with anchor ``a`` is scored with an
    adaptive symmetric normalisation (AS-norm)::

        s(p, a) = ((d - mu(p)) / sd(p) + (d - mu(a)) / sd(a)) / 2,   d = |p - a|

    Lower is more alike, like the raw distance, so every decision stays ``score <= threshold``.
    A face in a crowded part of the embedding space has a small ``mu``, so the same raw
    distance scores higher (less alike) for it. The frame score is the smallest ``s`` over the
    anchors, as with raw distances.

Cost
    The anchors' statistics are computed once per template (:class:`Matcher`); a frame costs
    one (F, D) x (D, C) product against the cohort and a partial sort: well under 1 ms for
    C ~ 2,000 (``faceunlock bench`` prints it).

Only numpy; no Qt, no torch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceunlock.engine.modelfile import load_model_bytes, sidecar_path
from faceunlock.errors import InputError, ModelError

#: scoring names recorded in a template's calibration data
RAW = "raw"
ASNORM = "asnorm"
#: the sidecar key naming the encoder a cohort belongs to
ENCODER_KEY = "encoder_sha256"
#: the cohort file shipped for an encoder file name
COHORT_FILES = {"encoder-int8.onnx": "cohort-int8.npz", "encoder.onnx": "cohort.npz"}
#: floor on a spread, so a degenerate cohort cannot divide by zero
MIN_SPREAD = 1e-3


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances, (N, D) x (M, D) -> (N, M) float64."""
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.sqrt(np.maximum(d2, 0.0))


@dataclass(frozen=True)
class Cohort:
    """Reference identities for score normalisation.

    means: (C, D) float32, one mean embedding per identity; k: how many nearest identities
    describe a face; meta: the sidecar (provenance, FAR table of normalised scores).
    """

    means: np.ndarray
    k: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = self.means
        if m.ndim != 2 or m.shape[0] < 2 or not np.all(np.isfinite(m)):
            raise InputError(f"cohort needs (C >= 2, D) finite embeddings, got {m.shape}")
        if not 2 <= self.k <= m.shape[0]:
            raise InputError(f"cohort k must be in 2..{m.shape[0]}, got {self.k}")

    @classmethod
    def load(cls, path: str | Path) -> Cohort:
        """Read a cohort file, checking it against its sidecar's sha256."""
        data, meta = load_model_bytes(path)
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                means = np.asarray(z["means"], np.float32)
            k = int(meta["k"])
            return cls(means, k, meta)
        except (KeyError, ValueError, TypeError, OSError, InputError) as e:
            raise ModelError(path, f"not a valid cohort file ({e})") from e

    @property
    def size(self) -> int:
        return int(self.means.shape[0])

    def stats(self, x: np.ndarray, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sd): mean and spread of each face's ``k`` nearest cohort distances.

        x: (N, D) -> two (N,) float64. ``exclude_self``: x are the cohort's own rows (in
        order), each is left out of its own neighbours.
        """
        d = pairwise_distances(x, self.means)
        if exclude_self:
            np.fill_diagonal(d, np.inf)
        k = min(self.k, d.shape[1] - (1 if exclude_self else 0))
        top = np.partition(d, k - 1, axis=1)[:, :k]
        return top.mean(axis=1), np.maximum(top.std(axis=1), MIN_SPREAD)


def asnorm(
    d: np.ndarray, mu_p: np.ndarray, sd_p: np.ndarray, mu_a: np.ndarray, sd_a: np.ndarray
) -> np.ndarray:
    """Normalised scores of raw distances ``d`` (N, M) for probes (N,) and anchors (M,)."""
    return 0.5 * ((d - mu_p[:, None]) / sd_p[:, None] + (d - mu_a[None, :]) / sd_a[None, :])


class Matcher:
    """Scores faces against one template's anchors, raw or cohort-normalised.

    anchors: (M, D) float32. With a cohort the anchors' statistics are computed here, once.
    """

    def __init__(self, anchors: np.ndarray, cohort: Cohort | None = None) -> None:
        a = np.asarray(anchors, np.float32)
        if a.ndim != 2 or a.shape[0] == 0:
            raise InputError(f"no anchors to compare with (shape {a.shape})")
        if cohort is not None and cohort.means.shape[1] != a.shape[1]:
            raise InputError(
                f"cohort embeddings have {cohort.means.shape[1]} dimensions, anchors {a.shape[1]}"
            )
        self.anchors = a
        self.cohort = cohort
        self._mu_a: np.ndarray | None = None
        self._sd_a: np.ndarray | None = None
        if cohort is not None:
            self._mu_a, self._sd_a = cohort.stats(a)

    @property
    def scoring(self) -> str:
        return RAW if self.cohort is None else ASNORM

    def pair_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, M) float64: every face against every anchor."""
        e = np.asarray(embeddings, np.float64)
        if e.ndim != 2 or e.shape[1] != self.anchors.shape[1]:
            raise InputError(f"shape mismatch: embeddings {e.shape}, anchors {self.anchors.shape}")
        d = pairwise_distances(e, self.anchors)
        if self.cohort is None or self._mu_a is None or self._sd_a is None:
            return d
        mu_p, sd_p = self.cohort.stats(e)
        return asnorm(d, mu_p, sd_p, self._mu_a, self._sd_a)

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Frame scores: each face's smallest score over the anchors, (N, D) -> (N,)."""
        if np.asarray(embeddings).size == 0:
            return np.zeros(0)
        return np.asarray(self.pair_scores(embeddings).min(axis=1))

    def leave_one_out(self) -> np.ndarray:
        """Each anchor's smallest score to the other anchors: (M,), needs M >= 2."""
        if self.anchors.shape[0] < 2:
            raise InputError(f"need at least 2 anchors, got {self.anchors.shape[0]}")
        s = self.pair_scores(self.anchors)
        np.fill_diagonal(s, np.inf)
        return np.asarray(s.min(axis=1))

    def lookalikes(self, n: int = 5) -> np.ndarray:
        """Scores of the ``n`` cohort identities closest to this template, ascending: how
        a stranger who looks most like the user would score. Raw scoring: distances."""
        if self.cohort is None:
            raise InputError("look-alike check needs a cohort")
        c = self.cohort
        d = pairwise_distances(c.means, self.anchors)
        mu_p, sd_p = c.stats(c.means, exclude_self=True)
        assert self._mu_a is not None and self._sd_a is not None
        s = asnorm(d, mu_p, sd_p, self._mu_a, self._sd_a).min(axis=1)
        return np.sort(s)[: max(1, n)]


def cohort_path(encoder_path: str | Path) -> Path | None:
    """The cohort file shipped beside an encoder, or None when that encoder has none."""
    p = Path(encoder_path)
    name = COHORT_FILES.get(p.name)
    if name is None:
        return None
    c = p.with_name(name)
    return c if c.is_file() and sidecar_path(c).is_file() else None


def cohort_for(encoder_path: str | Path, encoder_sha256: str) -> Cohort | None:
    """The cohort made for this encoder (by sha256), or None when none is shipped.

    A cohort made with another encoder is an error, never silently used: its scores would be
    meaningless."""
    c = cohort_path(encoder_path)
    if c is None:
        return None
    cohort = Cohort.load(c)
    if cohort.meta.get(ENCODER_KEY) != encoder_sha256:
        raise ModelError(
            c,
            f"made for encoder {str(cohort.meta.get(ENCODER_KEY))[:12]}…, "
            f"not {encoder_sha256[:12]}…",
        )
    return cohort

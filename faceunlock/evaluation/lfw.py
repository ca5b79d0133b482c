"""The LFW pair protocols: View 1 (DevTrain/DevTest) and View 2 (10 folds of 300+300).

Pair file formats (LFW README):

* View 1: first line ``N``, then N same pairs ``name i j`` and N different pairs
  ``name1 i name2 j``.
* View 2: first line ``10 300``, then 10 folds, each 300 same pairs followed by 300
  different pairs.

Image ``i`` of ``name`` is ``images/name/name_%04d.jpg``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceunlock.errors import InputError
from faceunlock.evaluation import metrics

if TYPE_CHECKING:
    from faceunlock.engine.pipeline import FacePipeline


@dataclass(frozen=True)
class PairSet:
    """pairs: list of (path_a, path_b) relative to the image root; same: (N,) bool;
    fold: (N,) int (0 for View 1)."""

    pairs: list[tuple[str, str]]
    same: np.ndarray
    fold: np.ndarray

    @property
    def n_folds(self) -> int:
        return int(self.fold.max()) + 1 if self.fold.size else 0

    def images(self) -> list[str]:
        """Distinct image paths in first-seen order."""
        seen: dict[str, None] = {}
        for a, b in self.pairs:
            seen.setdefault(a, None)
            seen.setdefault(b, None)
        return list(seen)


def image_relpath(name: str, index: int) -> str:
    return f"{name}/{name}_{index:04d}.jpg"


def _parse_pair(line: str, where: str) -> tuple[tuple[str, str], bool]:
    parts = line.split()
    try:
        if len(parts) == 3:
            return (
                image_relpath(parts[0], int(parts[1])),
                image_relpath(parts[0], int(parts[2])),
            ), True
        if len(parts) == 4:
            return (
                image_relpath(parts[0], int(parts[1])),
                image_relpath(parts[2], int(parts[3])),
            ), False
    except ValueError:
        pass
    raise InputError(f"{where}: not an LFW pair line: {line!r}")


def read_pairs(path: str | Path) -> PairSet:
    """Parse a View 1 or View 2 pairs file."""
    p = Path(path)
    try:
        lines = [ln for ln in p.read_text().splitlines() if ln.strip()]
    except OSError as e:
        raise InputError(f"pairs file {p}: cannot be read ({e.strerror})") from e
    if not lines:
        raise InputError(f"pairs file {p}: empty")
    head = lines[0].split()
    try:
        if len(head) == 1:
            folds, per = 1, int(head[0])
        elif len(head) == 2:
            folds, per = int(head[0]), int(head[1])
        else:
            raise ValueError
    except ValueError:
        raise InputError(
            f"pairs file {p}: first line must be 'N' or 'FOLDS N', got {lines[0]!r}"
        ) from None
    body = lines[1:]
    if len(body) != folds * per * 2:
        raise InputError(
            f"pairs file {p}: header promises {folds}x{per}x2 = {folds * per * 2} pairs, "
            f"found {len(body)}"
        )
    pairs: list[tuple[str, str]] = []
    same: list[bool] = []
    fold: list[int] = []
    for i, line in enumerate(body):
        pair, is_same = _parse_pair(line, f"{p}:{i + 2}")
        f_idx, within = divmod(i, 2 * per)
        if is_same != (within < per):
            raise InputError(f"{p}:{i + 2}: pair kind out of order for fold {f_idx}")
        pairs.append(pair)
        same.append(is_same)
        fold.append(f_idx)
    return PairSet(pairs, np.asarray(same, bool), np.asarray(fold, np.int64))


def pair_distances(pairs: PairSet, embeddings: Mapping[str, np.ndarray]) -> np.ndarray:
    """Euclidean distance per pair: (N,) float64."""
    a = np.stack([embeddings[x] for x, _ in pairs.pairs]).astype(np.float64)
    b = np.stack([embeddings[y] for _, y in pairs.pairs]).astype(np.float64)
    return np.asarray(np.linalg.norm(a - b, axis=1))


def summarise(d: np.ndarray, same: np.ndarray) -> dict[str, float]:
    e, e_thr = metrics.eer(d, same)
    tar3, thr3 = metrics.tar_at_far(d, same, 1e-3)
    return {
        "roc_auc": metrics.roc_auc(d, same),
        "eer": e,
        "eer_threshold": e_thr,
        "tar_at_far_1e-3": tar3,
        "threshold_at_far_1e-3": thr3,
    }


def evaluate(
    test: PairSet,
    test_dist: np.ndarray,
    fit: PairSet | None = None,
    fit_dist: np.ndarray | None = None,
    default_threshold: float | None = None,
) -> dict[str, Any]:
    """Accuracy under the protocol, plus AUC, EER, TAR@FAR=1e-3.

    * View 2 (10 folds): the threshold of each fold is fitted on the other nine; accuracy is
      the mean ± std over folds.
    * View 1 with a fit set: the threshold is fitted on ``fit`` and applied to ``test``.
    * View 1 alone: the model's ``default_threshold`` is used.
    """
    out: dict[str, Any] = {"pairs": len(test.pairs)}
    if test.n_folds > 1:
        accs, thrs = [], []
        for k in range(test.n_folds):
            tr = test.fold != k
            te = ~tr
            thr = metrics.best_threshold(test_dist[tr], test.same[tr])
            thrs.append(thr)
            accs.append(metrics.accuracy(test_dist[te], test.same[te], thr))
        out.update(
            protocol=f"{test.n_folds}-fold",
            accuracy=float(np.mean(accs)),
            accuracy_std=float(np.std(accs)),
            threshold=float(np.mean(thrs)),
            fold_accuracies=[float(a) for a in accs],
        )
    else:
        if fit is not None and fit_dist is not None:
            thr = metrics.best_threshold(fit_dist, fit.same)
            out["protocol"] = "view1-fitted"
            out["fit_accuracy"] = metrics.accuracy(fit_dist, fit.same, thr)
        elif default_threshold is not None:
            thr = float(default_threshold)
            out["protocol"] = "view1-default-threshold"
        else:
            raise InputError("View 1 evaluation needs --fit-pairs or a model default threshold")
        out["threshold"] = thr
        out["accuracy"] = metrics.accuracy(test_dist, test.same, thr)
    out.update(summarise(test_dist, test.same))
    return out


def run(
    pipe: FacePipeline, images: Path, pairs: str | Path, fit_pairs: str | Path | None = None
) -> dict[str, Any]:
    """``faceunlock eval lfw``: embed every image the pairs name (under ``images``; the
    central box where no face is found, the LFW protocol) and :func:`evaluate`; the result
    also holds the image count, the fallbacks, the settings, the time and the model."""
    import time

    from faceunlock.engine.batch import embed_paths

    if not images.is_dir():
        raise InputError(f"--images {images}: not a directory")
    test = read_pairs(pairs)
    fit = read_pairs(fit_pairs) if fit_pairs else None
    wanted = test.images() + (
        [x for x in fit.images() if x not in set(test.images())] if fit else []
    )
    t0 = time.perf_counter()
    _found, emb, _, fallback = embed_paths(
        [images / r for r in wanted],
        pipe,
        select="center",
        fallback_center=True,
        label="eval lfw",
    )
    elapsed = time.perf_counter() - t0
    table = dict(zip(wanted, emb, strict=True))
    test_d = pair_distances(test, table)
    fit_d = pair_distances(fit, table) if fit else None
    res = evaluate(test, test_d, fit, fit_d, default_threshold=pipe.threshold)
    test_set = set(test.images())
    idx = [i for i, w in enumerate(wanted) if w in test_set]
    res.update(
        images=len(test_set),
        no_face=int(fallback[idx].sum()),
        no_face_fallback="central box",
        flip_average=pipe.settings.flip_average,
        zoom=pipe.settings.zoom,
        seconds=round(elapsed, 1),
        model_sha256=pipe.encoder.sha256,
    )
    return res

"""Distances between embeddings, shared by the losses and the miners.

Every distance works on float tensors of any floating dtype and keeps it:

* :meth:`Distance.pairwise` ``(N, D), (M, D) -> (N, M)``: the distance of every row of ``x``
  to every row of ``y``;
* :meth:`Distance.paired` ``(N, D), (N, D) -> (N,)``: row ``i`` of ``x`` to row ``i`` of ``y``.

``is_inverted`` is True for similarities (larger = closer, :class:`CosineSimilarity`).
:meth:`Distance.dissimilarity` turns either kind into "larger = farther" (a similarity ``s``
becomes ``-s``), which is what the margin rules of the triplet loss and the miners use:
``d(a,p) - d(a,n) + margin`` reads ``s(a,n) - s(a,p) + margin`` for a similarity.

Euclidean distances are computed from the explicit differences (not from the
``|x|^2 + |y|^2 - 2 x.y`` expansion), so they are exact for near-identical embeddings and the
gradient at zero distance is 0 rather than NaN. Memory is ``N * M * D`` elements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Distance:
    """Base class. Subclasses implement :meth:`_pairwise` and :meth:`_paired`.

    normalize: L2-normalise inputs (along the last dimension) before measuring.
    """

    is_inverted: bool = False

    def __init__(self, normalize: bool = False) -> None:
        self.normalize = normalize

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"embeddings must be (N, D), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"embeddings must be floating point, got {x.dtype}")
        return F.normalize(x, p=2.0, dim=1) if self.normalize else x

    def pairwise(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(N, D), (M, D) -> (N, M); ``y`` defaults to ``x``."""
        x = self._prepare(x)
        y = x if y is None else self._prepare(y)
        if x.shape[1] != y.shape[1]:
            raise ValueError(f"dimension mismatch: {tuple(x.shape)} vs {tuple(y.shape)}")
        return self._pairwise(x, y)

    def paired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(N, D), (N, D) -> (N,): the distance between matching rows."""
        x = self._prepare(x)
        y = self._prepare(y)
        if x.shape != y.shape:
            raise ValueError(f"shape mismatch: {tuple(x.shape)} vs {tuple(y.shape)}")
        return self._paired(x, y)

    def dissimilarity(self, d: torch.Tensor) -> torch.Tensor:
        """``d`` as "larger = farther": itself for a distance, ``-d`` for a similarity."""
        return -d if self.is_inverted else d

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.pairwise(x, y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize={self.normalize})"

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _paired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class EuclideanDistance(Distance):
    """``|x - y|_2`` (dlib's metric; the engine's threshold is on this distance)."""

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(x[:, None, :] - y[None, :, :], dim=2)

    def _paired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(x - y, dim=1)


class SquaredEuclideanDistance(Distance):
    """``|x - y|_2^2`` (FaceNet's triplet loss uses this one)."""

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        diff = x[:, None, :] - y[None, :, :]
        return (diff * diff).sum(dim=2)

    def _paired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        diff = x - y
        return (diff * diff).sum(dim=1)


class CosineSimilarity(Distance):
    """``x.y / (|x| |y|)`` in [-1, 1]; inputs are always L2-normalised. Larger = closer."""

    is_inverted = True

    def __init__(self, normalize: bool = True) -> None:
        if not normalize:
            raise ValueError("CosineSimilarity always normalises its inputs")
        super().__init__(normalize=True)

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x @ y.T

    def _paired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x * y).sum(dim=1)

    def __repr__(self) -> str:
        return "CosineSimilarity()"

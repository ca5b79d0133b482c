"""Common machinery of the triplet miners.

A miner looks at one batch, ``embeddings`` float (N, D) and ``labels`` integer (N,), and
returns index triplets ``(anchors, positives, negatives)``: three int64 (T,) tensors on the
labels' device, with ``labels[a] == labels[p]``, ``a != p`` and ``labels[a] != labels[n]``.
Mining never builds a graph (it runs on detached embeddings under ``torch.no_grad``).
"""

from __future__ import annotations

import torch

from faceunlock.training.distances import Distance, EuclideanDistance

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def check_batch(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {tuple(embeddings.shape)}")
    if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(f"labels must be ({embeddings.shape[0]},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be integers, got {labels.dtype}")


def label_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) bool (N, N) masks: same label and not the diagonal; other label."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


class Miner:
    """Base class: ``miner(embeddings, labels) -> (anchors, positives, negatives)``.

    distance: the :class:`~faceunlock.training.distances.Distance` the mining rule is applied
    to (Euclidean by default; use the same one as the loss). ``last_num_triplets`` holds the
    number returned by the last call.
    """

    def __init__(self, distance: Distance | None = None) -> None:
        self.distance = distance if distance is not None else EuclideanDistance()
        self.last_num_triplets = 0

    def dissimilarity_matrix(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, N) pairwise "larger = farther" values (a similarity is negated)."""
        return self.distance.dissimilarity(self.distance.pairwise(embeddings))

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        raise NotImplementedError  # pragma: no cover

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        check_batch(embeddings, labels)
        with torch.no_grad():
            a, p, n = self.mine(embeddings.detach(), labels.to(embeddings.device))
        self.last_num_triplets = int(a.numel())
        return a.long(), p.long(), n.long()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(distance={self.distance!r})"

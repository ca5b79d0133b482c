"""Triplet margin loss (Weinberger & Saul; Schroff et al., FaceNet)."""

from __future__ import annotations

import torch
from torch import nn

from faceunlock.training.distances import Distance, EuclideanDistance
from faceunlock.training.miners.base import Triplets, check_batch
from faceunlock.training.miners.batch_all import BatchAllMiner


class TripletMarginLoss(nn.Module):
    """``max(d(A,P) - d(A,N) + margin, 0)`` (for a similarity ``max(s(A,N) - s(A,P) + margin,
    0)``), averaged over the triplets whose loss is positive.

    Triplets come from a miner (``indices_tuple``) or, when none is given, are every valid
    triplet of the batch (batch-all). When no triplet has a positive loss the result is 0
    (still connected to the graph). After each call: ``last_num_triplets``,
    ``last_num_active`` and ``active_fraction`` (``last_num_active / last_num_triplets``, 0
    for no triplet).
    """

    def __init__(self, margin: float = 0.2, distance: Distance | None = None) -> None:
        super().__init__()
        self.margin = float(margin)
        self.distance = distance if distance is not None else EuclideanDistance()
        self.last_num_triplets = 0
        self.last_num_active = 0
        self.active_fraction = 0.0

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        indices_tuple: Triplets | None = None,
    ) -> torch.Tensor:
        """embeddings: float (N, D); labels: integer (N,); indices_tuple: optional
        (anchors, positives, negatives) int64 (T,) each. Returns a 0-d tensor of the
        embeddings' dtype."""
        check_batch(embeddings, labels)
        if indices_tuple is None:
            indices_tuple = BatchAllMiner(self.margin, distance=self.distance)(
                embeddings, labels)
        a, p, n = (t.to(embeddings.device).long() for t in indices_tuple)
        self.last_num_triplets = int(a.numel())
        if a.numel() == 0:
            self.last_num_active = 0
            self.active_fraction = 0.0
            return embeddings.sum() * 0.0
        d = self.distance.dissimilarity(self.distance.pairwise(embeddings))
        losses = torch.relu(d[a, p] - d[a, n] + self.margin)
        active = losses > 0
        self.last_num_active = int(active.sum())
        self.active_fraction = self.last_num_active / self.last_num_triplets
        if self.last_num_active == 0:
            return losses.sum() * 0.0
        return losses.sum() / self.last_num_active

    def extra_repr(self) -> str:
        return f"margin={self.margin}, distance={self.distance!r}"

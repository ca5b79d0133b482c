"""Contrastive loss on pairs (Hadsell, Chopra & LeCun, 2006)."""

from __future__ import annotations

import torch
from torch import nn

from faceunlock.training.distances import Distance, EuclideanDistance
from faceunlock.training.miners.base import check_batch


class ContrastiveLoss(nn.Module):
    """``L = y D^2 + (1 - y) max(m - D, 0)^2`` averaged over pairs, ``y = 1`` for a pair of
    the same identity.

    Pairs: every ``i < j`` of the batch (``N (N - 1) / 2`` pairs), or the ``(i, j)`` index
    tensors passed as ``pairs``.

    For a similarity (``distance.is_inverted``, e.g. cosine) the same shape reads
    ``L = y (1 - S)^2 + (1 - y) max(S - m, 0)^2``: positives are pulled to similarity 1,
    negatives pushed below similarity ``m``.

    margin: ``m``; defaults to 1.0 for a distance and 0.5 for a similarity.
    After each call ``last_num_pairs`` and ``last_active_fraction`` (share of pairs with a
    non-zero loss) describe the batch.
    """

    def __init__(self, margin: float | None = None, distance: Distance | None = None) -> None:
        super().__init__()
        self.distance = distance if distance is not None else EuclideanDistance()
        if margin is None:
            margin = 0.5 if self.distance.is_inverted else 1.0
        self.margin = float(margin)
        self.last_num_pairs = 0
        self.last_active_fraction = 0.0

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """embeddings: float (N, D); labels: integer (N,); pairs: optional int64 (P,), (P,).

        Returns a 0-d tensor of the embeddings' dtype (0 when there is no pair).
        """
        check_batch(embeddings, labels)
        labels = labels.to(embeddings.device)
        n = embeddings.shape[0]
        if pairs is None:
            i, j = torch.triu_indices(n, n, offset=1, device=embeddings.device)
        else:
            i, j = (t.to(embeddings.device).long() for t in pairs)
        self.last_num_pairs = int(i.numel())
        if i.numel() == 0:
            self.last_active_fraction = 0.0
            return embeddings.sum() * 0.0
        d = self.distance.pairwise(embeddings)[i, j]
        same = labels[i] == labels[j]
        if self.distance.is_inverted:
            pos = (1.0 - d).square()
            neg = torch.relu(d - self.margin).square()
        else:
            pos = d.square()
            neg = torch.relu(self.margin - d).square()
        losses = torch.where(same, pos, neg)
        self.last_active_fraction = float((losses > 0).float().mean())
        return losses.mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}, distance={self.distance!r}"

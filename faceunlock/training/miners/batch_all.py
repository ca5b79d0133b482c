"""Batch-all triplet mining: every valid triplet of the batch."""

from __future__ import annotations

import torch

from faceunlock.training.distances import Distance
from faceunlock.training.miners.base import Miner, Triplets, label_masks


class BatchAllMiner(Miner):
    """Every triplet ``(i, j, k)`` of distinct indices with ``label[i] == label[j] !=
    label[k]``, in lexicographic ``(i, j, k)`` order.

    positive_only: keep only the triplets whose triplet loss is positive for ``margin``,
    i.e. ``d(i, j) - d(i, k) + margin > 0`` (for a similarity: ``s(i, k) - s(i, j) + margin
    > 0``). ``last_num_valid`` is the number of valid triplets before that filter.

    Memory: an (N, N, N) bool mask.
    """

    def __init__(self, margin: float = 0.2, positive_only: bool = False,
                 distance: Distance | None = None) -> None:
        super().__init__(distance)
        self.margin = float(margin)
        self.positive_only = positive_only
        self.last_num_valid = 0

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        pos, neg = label_masks(labels)
        valid = pos[:, :, None] & neg[:, None, :]
        self.last_num_valid = int(valid.sum())
        if self.positive_only:
            d = self.dissimilarity_matrix(embeddings)
            valid &= (d[:, :, None] - d[:, None, :] + self.margin) > 0
        a, p, n = valid.nonzero(as_tuple=True)
        return a, p, n

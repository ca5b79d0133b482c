"""Batch-hard triplet mining (Hermans, Beyer & Leibe, "In Defense of the Triplet Loss")."""

from __future__ import annotations

import torch

from faceunlock.training.miners.base import Miner, Triplets, label_masks


class BatchHardMiner(Miner):
    """One triplet per anchor: its farthest positive and its nearest negative.

    Anchors with no positive or no negative in the batch are skipped. Ties go to the lowest
    index. Anchors are returned in increasing order.
    """

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        pos, neg = label_masks(labels)
        d = self.dissimilarity_matrix(embeddings)
        inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
        hardest_pos = torch.where(pos, d, -inf).argmax(dim=1)
        hardest_neg = torch.where(neg, d, inf).argmin(dim=1)
        keep = pos.any(dim=1) & neg.any(dim=1)
        anchors = keep.nonzero(as_tuple=True)[0]
        return anchors, hardest_pos[anchors], hardest_neg[anchors]

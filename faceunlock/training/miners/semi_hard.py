"""Semi-hard negative mining (Schroff, Kalenichenko & Philbin, "FaceNet", 2015)."""

from __future__ import annotations

import torch

from faceunlock.training.distances import Distance
from faceunlock.training.miners.base import Miner, Triplets, label_masks


class SemiHardMiner(Miner):
    """For every anchor-positive pair ``(a, p)`` (ordered, ``a != p``), the hardest
    semi-hard negative: among the negatives with ``d(a,p) < d(a,n) < d(a,p) + margin``, the
    one closest to the anchor. Pairs with no such negative are skipped.

    For a similarity the rule reads ``s(a,p) - margin < s(a,n) < s(a,p)`` and the most
    similar such negative is taken. Pairs come in lexicographic ``(a, p)`` order; ties go to
    the lowest negative index.
    """

    def __init__(self, margin: float = 0.2, distance: Distance | None = None) -> None:
        super().__init__(distance)
        self.margin = float(margin)

    def mine(self, embeddings: torch.Tensor, labels: torch.Tensor) -> Triplets:
        pos, neg = label_masks(labels)
        d = self.dissimilarity_matrix(embeddings)
        a, p = pos.nonzero(as_tuple=True)
        d_ap = d[a, p][:, None]  # (P, 1)
        d_an = d[a]  # (P, N)
        ok = neg[a] & (d_an > d_ap) & (d_an < d_ap + self.margin)
        inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
        n = torch.where(ok, d_an, inf).argmin(dim=1)
        keep = ok.any(dim=1)
        return a[keep], p[keep], n[keep]

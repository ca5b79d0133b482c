"""ArcFace: additive angular margin loss (Deng, Guo, Xue & Zafeiriou, CVPR 2019)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ArcFaceLoss(nn.Module):
    """Softmax cross-entropy over class templates with an additive angular margin.

    Features and the templates ``W`` (num_classes, embedding_size) are L2-normalised and
    ``cos θ_c = x.W_c``. The logit of class ``c`` is ``s cos θ_c``, except for the target
    class ``y``, whose logit is ``s cos(θ_y + m)``.

    ``cos(θ + m)`` stops decreasing past ``θ = π - m``; there (``easy_margin`` off, the
    default) the target logit continues linearly as ``s (cos θ - m sin m)`` as in the
    reference implementation, so the margin never rewards a larger angle. With
    ``easy_margin`` the margin applies only where ``cos θ > 0``.

    The templates are a parameter of this module: give them to the optimiser.
    """

    def __init__(self, num_classes: int, embedding_size: int, margin: float = 0.5,
                 scale: float = 64.0, easy_margin: bool = False) -> None:
        super().__init__()
        if num_classes < 1 or embedding_size < 1:
            raise ValueError("num_classes and embedding_size must be positive")
        self.num_classes = num_classes
        self.embedding_size = embedding_size
        self.margin = float(margin)
        self.scale = float(scale)
        self.easy_margin = easy_margin
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.xavier_uniform_(self.weight)

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """float (N, E) -> (N, C) cosines between features and templates."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embedding_size:
            raise ValueError(f"embeddings must be (N, {self.embedding_size}), "
                             f"got {tuple(embeddings.shape)}")
        w = self.weight.to(embeddings.dtype)
        return F.normalize(embeddings, dim=1) @ F.normalize(w, dim=1).T

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """embeddings float (N, E), labels int64 (N,) in [0, num_classes) -> (N, C) logits."""
        if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
            raise ValueError(f"labels must be ({embeddings.shape[0]},), got "
                             f"{tuple(labels.shape)}")
        labels = labels.to(embeddings.device).long()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes})")
        cos = self.cosines(embeddings).clamp(-1.0, 1.0)
        cos_y = cos.gather(1, labels[:, None])
        # sin θ >= 0 for θ in [0, π]; the clamp keeps the gradient finite at |cos| = 1
        sin_y = (1.0 - cos_y.square()).clamp_min(1e-12).sqrt()
        m = self.margin
        target = cos_y * math.cos(m) - sin_y * math.sin(m)
        if self.easy_margin:
            target = torch.where(cos_y > 0, target, cos_y)
        else:
            target = torch.where(cos_y > math.cos(math.pi - m), target,
                                 cos_y - m * math.sin(m))
        out = cos.scatter(1, labels[:, None], target)
        return out * self.scale

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of :meth:`logits`: a 0-d tensor."""
        return F.cross_entropy(self.logits(embeddings, labels), labels.to(embeddings.device)
                               .long())

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, embedding_size={self.embedding_size}, "
                f"margin={self.margin}, scale={self.scale}, easy_margin={self.easy_margin}")

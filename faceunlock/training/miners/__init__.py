"""Triplet miners: ``miner(embeddings, labels) -> (anchors, positives, negatives)``."""

from faceunlock.training.miners.base import Miner, Triplets
from faceunlock.training.miners.batch_all import BatchAllMiner
from faceunlock.training.miners.batch_hard import BatchHardMiner
from faceunlock.training.miners.semi_hard import SemiHardMiner

__all__ = ["BatchAllMiner", "BatchHardMiner", "Miner", "SemiHardMiner", "Triplets"]

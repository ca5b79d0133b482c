"""Metric-learning losses for the encoder."""

from faceunlock.training.losses.arcface import ArcFaceLoss
from faceunlock.training.losses.contrastive import ContrastiveLoss
from faceunlock.training.losses.triplet import TripletMarginLoss

__all__ = ["ArcFaceLoss", "ContrastiveLoss", "TripletMarginLoss"]

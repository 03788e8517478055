"""Architectures on [0, 1] inputs with named stages and penultimate features, and checkpoint I/O."""

from .base import IMAGENET, SYMMETRIC, Normalize, TGModel
from .dtn import DTN

__all__ = ["DTN", "IMAGENET", "SYMMETRIC", "Normalize", "TGModel"]

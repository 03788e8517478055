"""Datasets as uint8 domains with seeded splits: :func:`load_domain` is the entry point.

``transferguard datasets`` lists what :data:`DOMAINS` holds and what is available here.
"""

from __future__ import annotations

from ._image import read_idx
from ._split import stratified_split, subsample_per_class
from .base import Domain, Split, to_float, to_uint8
from .registry import DOMAINS, DomainSpec, describe_domains, load_domain
from .syndigits import available_fonts, generate_syndigits

__all__ = [
    "DOMAINS", "Domain", "DomainSpec", "Split", "available_fonts", "describe_domains",
    "generate_syndigits", "load_domain", "read_idx", "stratified_split", "subsample_per_class",
    "to_float", "to_uint8",
]

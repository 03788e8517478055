"""Datasets as uint8 domains with seeded splits: :func:`load_domain` is the entry point.

``transferguard datasets`` lists what :data:`DOMAINS` holds and what is available here. Names are
resolved on first use (PEP 562), so ``from transferguard.data.registry import DOMAINS`` — what the
command line needs to check a domain name — imports neither torch nor any reader.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_WHERE = {
    "read_idx": "._image", "stratified_split": "._split", "subsample_per_class": "._split",
    "Domain": ".base", "Split": ".base", "to_float": ".base", "to_uint8": ".base",
    "DOMAINS": ".registry", "DomainSpec": ".registry", "describe_domains": ".registry",
    "load_domain": ".registry", "available_fonts": ".syndigits",
    "generate_syndigits": ".syndigits",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

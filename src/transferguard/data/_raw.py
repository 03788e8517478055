"""The in-memory form every dataset reader returns before splitting and caching."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._cache import cache_root

#: Seed of the fixed train/test hold-out of datasets that ship without a test split.
HOLDOUT_SEED = 0


@dataclass
class RawDomain:
    """Full train and test arrays of a domain at the requested size (uint8 N×3×S×S)."""

    classes: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    meta: dict[str, Any] = field(default_factory=dict)


def data_root() -> Path:
    """Default directory of downloadable datasets: ``$TRANSFERGUARD_DATA`` or ``<cache>/datasets``."""
    env = os.environ.get("TRANSFERGUARD_DATA")
    return Path(env).expanduser() if env else cache_root() / "datasets"

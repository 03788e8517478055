"""The experiment registry (declared by the paper packages), the cached runner and ``reproduce``.

Importing this package is light (no torch, pandas or matplotlib), so that ``transferguard
reproduce --list`` answers at once; :class:`Runner` and :class:`Store` are imported on first use.
"""

from __future__ import annotations

from typing import Any

from .base import RESULT_COLUMNS, SCALES, Experiment
from .registry import EXPERIMENTS, Lazy, get_experiment, register
from .reproduce import reproduce, reproduce_all
from .spec import DataSpec, ModelSpec, TrainSpec

__all__ = ["EXPERIMENTS", "RESULT_COLUMNS", "SCALES", "DataSpec", "Experiment", "Lazy", "ModelSpec",
           "Runner", "Store", "TrainSpec", "get_experiment", "register", "reproduce", "reproduce_all"]


def __getattr__(name: str) -> Any:
    """``Runner`` and ``Store`` (they import torch) are imported when first asked for."""
    if name == "Runner":
        from .runner import Runner

        return Runner
    if name == "Store":
        from .store import Store

        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

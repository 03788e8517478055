"""Declarative experiments of both papers, the cached runner and ``reproduce``."""

from .base import RESULT_COLUMNS, SCALES, Experiment
from .registry import EXPERIMENTS, get_experiment
from .reproduce import reproduce, reproduce_all
from .runner import Runner
from .spec import DataSpec, ModelSpec, TrainSpec
from .store import Store

__all__ = ["EXPERIMENTS", "RESULT_COLUMNS", "SCALES", "DataSpec", "Experiment", "ModelSpec",
           "Runner", "Store", "TrainSpec", "get_experiment", "reproduce", "reproduce_all"]

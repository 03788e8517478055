"""Training: one method-agnostic loop (:func:`fit`), its configuration, evaluation, and
:func:`train_one` (seed → build → prepare → fit, shared by every caller)."""

from .config import (
    PRECISIONS,
    AdvTrainConfig,
    SWAConfig,
    TrainConfig,
    default_precision,
    lr_factor,
    resolve_precision,
)
from .loop import TrainResult, evaluate, fit
from .one import train_one

__all__ = ["PRECISIONS", "AdvTrainConfig", "SWAConfig", "TrainConfig", "TrainResult",
           "default_precision", "evaluate", "fit", "lr_factor", "resolve_precision", "train_one"]

"""Training: one method-agnostic loop (:func:`fit`), its configuration, and evaluation."""

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

__all__ = ["PRECISIONS", "AdvTrainConfig", "SWAConfig", "TrainConfig", "TrainResult",
           "default_precision", "evaluate", "fit", "lr_factor", "resolve_precision"]

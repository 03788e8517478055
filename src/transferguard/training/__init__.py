"""Training: one method-agnostic loop (:func:`fit`), its configuration, and evaluation."""

from .config import AdvTrainConfig, SWAConfig, TrainConfig, lr_factor
from .loop import TrainResult, evaluate, fit

__all__ = ["AdvTrainConfig", "SWAConfig", "TrainConfig", "TrainResult", "evaluate", "fit",
           "lr_factor"]

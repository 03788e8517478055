"""L∞ attacks in pixel space: FGSM, PGD, the penultimate-feature attack, and the noise control.

All attacks run the model in eval mode (restoring its modes afterwards), take gradients with
respect to the input only, and return images in ``[x − ε, x + ε] ∩ [0, 1]``.
"""

from .engine import LinfThreat, PerturbResult, eval_mode, input_gradient, perturb
from .feature import feature_attack
from .fgsm import fgsm, fgsm_sweep
from .losses import (
    LOGIT_LOSSES,
    ce_loss,
    feature_extractor,
    feature_target_loss,
    margin_logit_loss,
    targeted_ce_loss,
)
from .noise import uniform_noise
from .pgd import pgd
from .registry import ATTACKS, DEFAULT_EPS
from .transfer import craft_in_batches, predict, transfer_predictions

__all__ = [
    "ATTACKS",
    "DEFAULT_EPS",
    "LOGIT_LOSSES",
    "LinfThreat",
    "PerturbResult",
    "ce_loss",
    "craft_in_batches",
    "eval_mode",
    "feature_attack",
    "feature_extractor",
    "feature_target_loss",
    "fgsm",
    "fgsm_sweep",
    "input_gradient",
    "margin_logit_loss",
    "perturb",
    "pgd",
    "predict",
    "targeted_ce_loss",
    "transfer_predictions",
    "uniform_noise",
]

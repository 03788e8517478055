"""L∞ attacks in pixel space: FGSM, PGD, the penultimate-feature attack, the noise control, and
the transfer suite (MI-DI-TI-FGSM, intermediate-layer, FIA and ILA attacks; see :data:`SUITE`).

All attacks run the model in eval mode (restoring its modes afterwards), take gradients with
respect to the input only, and return images in ``[x − ε, x + ε] ∩ [0, 1]``.
"""

from .engine import LinfThreat, PerturbResult, eval_mode, input_gradient, perturb
from .feature import feature_attack
from .fgsm import fgsm, fgsm_sweep
from .fia import fia_attack
from .ila import ila_attack
from .layer import layer_attack
from .losses import (
    LOGIT_LOSSES,
    ce_loss,
    feature_extractor,
    feature_target_loss,
    margin_logit_loss,
    stage_split,
    targeted_ce_loss,
)
from .mdti import mi_di_ti_fgsm
from .noise import uniform_noise
from .pgd import pgd
from .registry import (
    ATTACKS,
    BUDGETS,
    DEFAULT_EPS,
    SUITE,
    AttackBudget,
    AttackEntry,
    feature_mode,
    suite_options,
    transfer_suite,
)
from .transfer import craft_in_batches, predict, transfer_predictions
from .tricks import TransferTricks, gaussian_kernel, input_diversity, smooth_gradient

__all__ = [
    "ATTACKS",
    "BUDGETS",
    "DEFAULT_EPS",
    "LOGIT_LOSSES",
    "SUITE",
    "AttackBudget",
    "AttackEntry",
    "LinfThreat",
    "PerturbResult",
    "TransferTricks",
    "ce_loss",
    "craft_in_batches",
    "eval_mode",
    "feature_attack",
    "feature_extractor",
    "feature_mode",
    "feature_target_loss",
    "fgsm",
    "fgsm_sweep",
    "fia_attack",
    "gaussian_kernel",
    "ila_attack",
    "input_diversity",
    "input_gradient",
    "layer_attack",
    "margin_logit_loss",
    "mi_di_ti_fgsm",
    "perturb",
    "pgd",
    "predict",
    "smooth_gradient",
    "stage_split",
    "suite_options",
    "targeted_ce_loss",
    "transfer_predictions",
    "transfer_suite",
    "uniform_noise",
]

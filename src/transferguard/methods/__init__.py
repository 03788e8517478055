"""Transfer methods: how the target model is initialised, what trains and what regularises it.

Names: ``scratch`` (alias ``retrain``), ``ft`` (``finetune``), ``commoninit``, ``linear``,
``l2sp``, ``delta`` (plain feature matching, as in the Renofeation code), ``delta-attention``
(the DELTA paper's channel attention), ``delta-r``, ``renofeation``. See :mod:`.registry`.
"""

from .base import TransferMethod, copy_weights, reinitialize
from .basic import CommonInit, FineTune, LinearProbe, Scratch
from .delta import DeltaR, FeatureDistillation, Renofeation
from .delta_attention import DeltaAttention, channel_attention
from .l2sp import L2SP
from .registry import ALIASES, METHODS, create_method, list_methods

__all__ = [
    "ALIASES", "L2SP", "METHODS", "CommonInit", "DeltaAttention", "DeltaR", "FeatureDistillation",
    "FineTune", "LinearProbe", "Renofeation", "Scratch", "TransferMethod", "channel_attention",
    "copy_weights", "create_method", "list_methods", "reinitialize",
]

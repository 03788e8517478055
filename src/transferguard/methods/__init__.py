"""Transfer methods: how the target model is initialised, what trains and what regularises it.

Names: ``scratch`` (alias ``retrain``), ``ft`` (``finetune``), ``commoninit``, ``linear``,
``l2sp``, ``delta`` (plain feature matching, as in the Renofeation code), ``delta-attention``
(the DELTA paper's channel attention), ``delta-r``, ``renofeation``. See :mod:`.registry`.
"""

from .._lazy import lazy_exports

_WHERE = {
    "TransferMethod": ".base", "copy_weights": ".base", "reinitialize": ".base",
    "CommonInit": ".basic", "FineTune": ".basic", "LinearProbe": ".basic", "Scratch": ".basic",
    "DeltaR": ".delta", "FeatureDistillation": ".delta", "Renofeation": ".delta",
    "DeltaAttention": ".delta_attention", "channel_attention": ".delta_attention",
    "L2SP": ".l2sp", "ALIASES": ".registry", "METHODS": ".registry",
    "create_method": ".registry", "list_methods": ".registry", "method_class": ".registry",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)

"""Transfer methods: how the target model is initialised, what trains and what regularises it.

Names: ``scratch`` (alias ``retrain``), ``ft`` (``finetune``), ``commoninit``, ``linear``,
``l2sp``, ``delta`` (plain feature matching, as in the Renofeation code), ``delta-attention``
(the DELTA paper's channel attention), ``delta-r``, ``renofeation``. See :mod:`.registry`.
"""

import importlib
from typing import Any

_WHERE = {
    "TransferMethod": ".base", "copy_weights": ".base", "reinitialize": ".base",
    "CommonInit": ".basic", "FineTune": ".basic", "LinearProbe": ".basic", "Scratch": ".basic",
    "DeltaR": ".delta", "FeatureDistillation": ".delta", "Renofeation": ".delta",
    "DeltaAttention": ".delta_attention", "channel_attention": ".delta_attention",
    "L2SP": ".l2sp", "ALIASES": ".registry", "METHODS": ".registry",
    "create_method": ".registry", "list_methods": ".registry", "method_class": ".registry",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """Names resolve on first use (PEP 562): checking a method name imports no torch."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])

"""Method registry: a name (or alias) and options → a :class:`TransferMethod`.

Adding a method = one module with a :class:`TransferMethod` subclass + one line in :data:`METHODS`.
Every ablation of the Renofeation paper's Figure 3 is a name plus options, e.g.
``create_method("delta", dropout=0.1, swa=True)`` (DELTA + DO + SWA),
``create_method("delta-r", swa=True)``, ``create_method("scratch", dropout=0.1)``;
``renofeation`` = ``delta-r`` with ``lambda_feat=5, dropout=0.1, swa=True``. Adversarial training
combines with any method through :class:`transferguard.training.AdvTrainConfig`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .._names import unknown_name
from ..errors import ConfigError
from .base import TransferMethod
from .basic import CommonInit, FineTune, LinearProbe, Scratch
from .delta import DeltaR, FeatureDistillation, Renofeation
from .delta_attention import DeltaAttention
from .l2sp import L2SP

METHODS: dict[str, Callable[..., TransferMethod]] = {
    "scratch": Scratch,
    "ft": FineTune,
    "commoninit": CommonInit,
    "linear": LinearProbe,
    "l2sp": L2SP,
    "delta": FeatureDistillation,
    "delta-attention": DeltaAttention,
    "delta-r": DeltaR,
    "renofeation": Renofeation,
}

#: Other names the papers use for the same methods.
ALIASES: dict[str, str] = {
    "retrain": "scratch",
    "re-training": "scratch",
    "finetune": "ft",
    "fine-tuning": "ft",
    "linear-probe": "linear",
}


def list_methods() -> list[str]:
    """Canonical method names (aliases excluded)."""
    return list(METHODS)


def create_method(name: str, **options: Any) -> TransferMethod:
    """Build the method ``name`` (or an alias) with ``options``; bad input raises ConfigError."""
    key = ALIASES.get(name, name)
    if key not in METHODS:
        raise ConfigError(unknown_name("method", name, [*METHODS, *ALIASES]))
    factory = METHODS[key]
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as err:
        params = [p for p in inspect.signature(factory).parameters if p not in ("args", "kwargs")]
        raise ConfigError(f"invalid options {sorted(options)} for method {key!r} "
                          f"(accepted: {', '.join(params)})") from err
    return factory(**options)

"""Method registry: a name (or alias) and options → a :class:`TransferMethod`.

Adding a method = one module with a :class:`TransferMethod` subclass + one line in :data:`METHODS`
(``name: "module:Class"``, imported on first use).
Every ablation of the Renofeation paper's Figure 3 is a name plus options, e.g.
``create_method("delta", dropout=0.1, swa=True)`` (DELTA + DO + SWA),
``create_method("delta-r", swa=True)``, ``create_method("scratch", dropout=0.1)``;
``renofeation`` = ``delta-r`` with ``lambda_feat=5, dropout=0.1, swa=True``. Adversarial training
combines with any method through :class:`transferguard.training.AdvTrainConfig`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from .._names import unknown_name
from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import TransferMethod

#: Method name → ``module:class`` in this package, imported when the method is first built, so
#: listing and checking names needs neither torch nor the method classes.
METHODS: dict[str, str] = {
    "scratch": "basic:Scratch",
    "ft": "basic:FineTune",
    "commoninit": "basic:CommonInit",
    "linear": "basic:LinearProbe",
    "l2sp": "l2sp:L2SP",
    "delta": "delta:FeatureDistillation",
    "delta-attention": "delta_attention:DeltaAttention",
    "delta-r": "delta:DeltaR",
    "renofeation": "delta:Renofeation",
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


def method_key(name: str) -> str:
    """The canonical name of method ``name`` (or an alias); ConfigError with suggestions if unknown."""
    key = ALIASES.get(name, name)
    if key not in METHODS:
        raise ConfigError(unknown_name("method", name, [*METHODS, *ALIASES]))
    return key


def method_class(name: str) -> type[TransferMethod]:
    """The class registered for method ``name`` (or an alias)."""
    module, cls = METHODS[method_key(name)].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def create_method(name: str, **options: Any) -> TransferMethod:
    """Build the method ``name`` (or an alias) with ``options``; bad input raises ConfigError."""
    key = method_key(name)
    factory = method_class(key)
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as err:
        params = [p for p in inspect.signature(factory).parameters if p not in ("args", "kwargs")]
        raise ConfigError(f"invalid options {sorted(options)} for method {key!r} "
                          f"(accepted: {', '.join(params)})") from err
    return factory(**options)

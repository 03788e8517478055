"""Train one model: the seed → build → prepare → fit sequence shared by every caller.

The experiment runner (one grid point), ``transferguard train`` and the audit's reference
model all train through :func:`train_one`, so a model trained by any of them with the same
settings gets the same weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from .config import TrainConfig
from .loop import TrainResult, fit

if TYPE_CHECKING:
    from ..data.base import Split
    from ..methods.base import TransferMethod
    from ..models.base import TGModel


def train_one(arch: str | Callable[[int], TGModel], method: str | TransferMethod,
              train: Split, val: Split | None, settings: Mapping[str, Any], *, seed: int,
              num_classes: int, parent: TGModel | None = None, pretrained: Any = None,
              method_options: Mapping[str, Any] | None = None,
              on_prepared: Callable[[TGModel], object] | None = None,
              fit_context: Callable[[], AbstractContextManager[object]] = nullcontext,
              ) -> TrainResult:
    """Train one ``num_classes``-way model on ``train`` (``val`` selects the best weights).

    Seeds everything with ``seed``; builds the model from ``arch`` (an architecture name, built
    with ``pretrained`` weights — callers pass None when ``parent`` supplies them — or a builder
    called with ``num_classes``); creates ``method`` when given by name (with
    ``method_options``) and prepares the model from ``parent``; calls ``on_prepared`` on the
    prepared model (e.g. to set its input normalisation); builds ``TrainConfig(**settings,
    seed=seed)``; then runs :func:`fit` inside ``fit_context()``, with ``parent`` as teacher
    when the method needs one.
    """
    from ..methods import create_method
    from ..models import create_model
    from ..utils import seed_everything

    seed_everything(seed)
    if isinstance(arch, str):
        model = create_model(arch, num_classes, pretrained=pretrained)
    else:
        model = arch(num_classes)
    if isinstance(method, str):
        method = create_method(method, **(method_options or {}))
    elif method_options:
        raise TypeError("method_options only apply to a method given by name")
    model = method.prepare(model, parent, num_classes)
    if on_prepared is not None:
        on_prepared(model)
    config = TrainConfig(**settings, seed=seed)
    teacher = parent if getattr(method, "needs_teacher", False) else None
    with fit_context():
        return fit(model, method, train, val, config, teacher=teacher)

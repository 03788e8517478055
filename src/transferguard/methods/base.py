"""The transfer-method interface: how a target model is initialised, what trains, what regularises.

A :class:`TransferMethod` is a small object the training loop (:func:`transferguard.training.fit`)
calls at fixed points, so adding a method is one file plus one registry line, never a new branch
in the loop:

* :meth:`~TransferMethod.prepare` — initialise the target from the source (or not), reset the head,
  set spatial dropout, freeze what must stay frozen;
* :meth:`~TransferMethod.setup` — one-off work on the training data before the first step
  (e.g. DELTA's channel attention);
* :meth:`~TransferMethod.parameter_groups` — SGD groups (backbone vs head weight decay);
* :meth:`~TransferMethod.train_mode` — which modules are in training mode during a step;
* :meth:`~TransferMethod.regularizer` — the extra loss added to the cross-entropy.

Options shared by every method: ``dropout`` (spatial dropout after each stage), ``swa``
(run a stochastic-weight-averaging stage after the main one) and ``lambda_feat`` (weight of the
feature-distillation term, for methods that distil).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ConfigError
from ..models.base import TGModel

if TYPE_CHECKING:
    from ..data.base import Split
    from ..training.config import TrainConfig

log = logging.getLogger(__name__)


class TransferMethod:
    """Base class: random-free defaults (train everything, no regulariser, keep the weights given).

    Subclasses override class attributes and hooks. ``options()`` lists the constructor options
    that define the method, for records and checkpoint fingerprints.
    """

    #: Registry name.
    name: str = "base"
    #: Whether :func:`fit` must be given the frozen source model as ``teacher``.
    needs_teacher: bool = False
    #: Whether the target starts from the source weights (``False``: random initialisation).
    init_from_source: bool = True
    #: Whether BN statistics may change during training / SWA (``False`` for the linear probe).
    updates_bn_stats: bool = True
    #: Default of the ``lambda_feat`` option (``None``: the method has no distillation term).
    default_lambda_feat: float | None = None
    #: Default of the ``dropout`` and ``swa`` options.
    default_dropout: float = 0.0
    default_swa: bool = False
    #: Re-initialise the head even when the source has the same class count.
    new_head: bool = False

    def __init__(self, *, dropout: float | None = None, swa: bool | None = None,
                 lambda_feat: float | None = None) -> None:
        self.dropout = float(self.default_dropout if dropout is None else dropout)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{self.name}: dropout must be in [0, 1), got {self.dropout}")
        self.swa = bool(self.default_swa if swa is None else swa)
        if lambda_feat is not None and self.default_lambda_feat is None:
            raise ConfigError(f"{self.name}: option lambda_feat only applies to distillation methods")
        self.lambda_feat = self.default_lambda_feat if lambda_feat is None else float(lambda_feat)
        if self.lambda_feat is not None and self.lambda_feat < 0:
            raise ConfigError(f"{self.name}: lambda_feat must be >= 0, got {self.lambda_feat}")
        #: Facts about how the model was initialised (filled by :meth:`prepare`).
        self.info: dict[str, Any] = {}

    # ----------------------------------------------------------------- description
    def options(self) -> dict[str, Any]:
        """The options that define this method instance (JSON-serialisable)."""
        opts: dict[str, Any] = {"dropout": self.dropout, "swa": self.swa}
        if self.lambda_feat is not None:
            opts["lambda_feat"] = self.lambda_feat
        return opts

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, **self.options(), **self.info}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------------ hooks
    def prepare(self, model: TGModel, source: TGModel | None, num_classes: int) -> TGModel:
        """Initialise ``model`` (in place) for a target task with ``num_classes`` classes.

        Default: copy the source weights when :attr:`init_from_source` (a freshly initialised head
        when the class count differs or :attr:`new_head` is set), else re-initialise every layer;
        then set spatial dropout. Returns the same ``model`` object.
        """
        if model.num_classes != num_classes:
            model.reset_head(num_classes)
        if self.init_from_source:
            if source is None:
                raise ConfigError(f"method {self.name!r} starts from a source model, but none was given")
            keep_head = source.num_classes == num_classes and not self.new_head
            copy_weights(model, source, include_head=keep_head)
            if not keep_head:
                model.reset_head(num_classes)
            self.info.update(init="source", head="source" if keep_head else "new")
        else:
            reinitialize(model)
            self.info.update(init="random", head="new")
        model.set_spatial_dropout(self.dropout)
        return model

    def setup(self, model: TGModel, teacher: TGModel | None, train: Split,
              device: torch.device) -> None:
        """One-off computation before the first step (default: nothing)."""

    def parameter_groups(self, model: TGModel, config: TrainConfig) -> list[dict[str, Any]]:
        """SGD parameter groups: backbone with ``weight_decay``, head with ``head_weight_decay``."""
        head_wd = config.weight_decay if config.head_weight_decay is None else config.head_weight_decay
        return _groups(model, config.weight_decay, head_wd)

    def train_mode(self, model: TGModel) -> None:
        """Put ``model`` in the mode used for a training step (default: everything trains)."""
        model.train()

    def regularizer(self, model: TGModel, x: torch.Tensor, stage_outs: list[torch.Tensor],
                    feats: torch.Tensor, teacher_stage_outs: list[torch.Tensor] | None
                    ) -> torch.Tensor:
        """Extra loss added to the cross-entropy (default: zero)."""
        return feats.new_zeros(())

    # --------------------------------------------------------------- resumable state
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors the method computed (reference weights, attention) for checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ConfigError(f"method {self.name!r} has no state, got keys {sorted(state)}")


# ---------------------------------------------------------------------------- helpers
def _groups(model: TGModel, backbone_wd: float, head_wd: float) -> list[dict[str, Any]]:
    backbone = [p for p in model.backbone_parameters() if p.requires_grad]
    head = [p for p in model.head_parameters() if p.requires_grad]
    groups = []
    if backbone:
        groups.append({"params": backbone, "weight_decay": float(backbone_wd), "name": "backbone"})
    if head:
        groups.append({"params": head, "weight_decay": float(head_wd), "name": "head"})
    return groups


def reinitialize(model: nn.Module) -> None:
    """Re-draw every layer's parameters with its default initialiser and reset BN statistics.

    Uses the global torch RNG: seed it (``seed_everything``) for a reproducible initialisation.
    """
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset) and module is not model:
            reset()


def copy_weights(target: TGModel, source: TGModel, *, include_head: bool) -> None:
    """Copy the source's parameters and buffers into ``target`` (the head only if asked).

    Raises :class:`ConfigError` when the architectures do not match.
    """
    src = source.state_dict()
    dst = target.state_dict()
    wanted = {k for k in dst if include_head or not k.startswith("head.")}
    missing = sorted(k for k in wanted if k not in src)
    bad = sorted(k for k in wanted if k in src and src[k].shape != dst[k].shape)
    if missing or bad:
        raise ConfigError(
            f"cannot initialise a {target.arch!r} model from a {source.arch!r} source: "
            f"missing {missing[:5]}, shape mismatch {bad[:5]}")
    with torch.no_grad():
        for k in wanted:
            dst[k].copy_(src[k].to(dst[k].device, dst[k].dtype))

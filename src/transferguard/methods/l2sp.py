"""L2-SP (Li, Grandvalet & Davoine, ICML 2018): weight decay toward the pre-trained weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..errors import ConfigError
from ..models.base import TGModel
from .base import TransferMethod, _groups

if TYPE_CHECKING:
    from ..training.config import TrainConfig


class L2SP(TransferMethod):
    """Fine-tuning with ``alpha * ||w - w0||^2`` on the backbone + ``beta * ||w_head||^2`` on the head.

    ``w0`` are the source weights copied into the backbone by :meth:`prepare` (every backbone
    parameter: convolution/linear weights and biases and BN affine parameters); the head term is
    plain L2 on the new head's weight and bias. Defaults ``alpha = beta = 0.01`` are the
    Renofeation code's defaults (``--l2sp_lmda 1e-2``, ``--beta 1e-2``). Note the L2-SP paper
    writes ``alpha/2`` and ``beta/2``: our ``alpha`` equals half of the paper's. Because this
    regulariser replaces weight decay (decay toward 0 would fight the pull toward ``w0``), both
    SGD groups get ``weight_decay = 0``, as in the Renofeation code.
    """

    name = "l2sp"

    def __init__(self, *, alpha: float = 0.01, beta: float = 0.01, reset_head: bool = False,
                 dropout: float | None = None, swa: bool | None = None) -> None:
        super().__init__(dropout=dropout, swa=swa)
        if alpha < 0 or beta < 0:
            raise ConfigError(f"l2sp: alpha and beta must be >= 0, got {alpha}, {beta}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.new_head = bool(reset_head)
        self._w0: dict[str, torch.Tensor] = {}

    def options(self) -> dict[str, Any]:
        return {**super().options(), "alpha": self.alpha, "beta": self.beta,
                "reset_head": self.new_head}

    def prepare(self, model: TGModel, source: TGModel | None, num_classes: int) -> TGModel:
        model = super().prepare(model, source, num_classes)
        self._w0 = {n: p.detach().clone() for n, p in model.backbone_named_parameters()}
        return model

    def parameter_groups(self, model: TGModel, config: TrainConfig) -> list[dict[str, Any]]:
        return _groups(model, 0.0, 0.0)

    def regularizer(self, model: TGModel, x: torch.Tensor, stage_outs: list[torch.Tensor],
                    feats: torch.Tensor, teacher_stage_outs: list[torch.Tensor] | None
                    ) -> torch.Tensor:
        if not self._w0:
            raise ConfigError("l2sp: call prepare() before training (it records the source weights)")
        sp = feats.new_zeros(())
        for n, p in model.backbone_named_parameters():
            w0 = self._w0[n]
            if w0.device != p.device:
                w0 = self._w0[n] = w0.to(p.device)
            sp = sp + (p - w0).pow(2).sum()
        head = sum((p.pow(2).sum() for p in model.head_parameters()), feats.new_zeros(()))
        return self.alpha * sp + self.beta * head

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"w0.{n}": t.detach().cpu() for n, t in self._w0.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self._w0 = {k[3:]: v.clone() for k, v in state.items() if k.startswith("w0.")}

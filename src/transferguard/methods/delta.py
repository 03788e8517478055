"""Feature distillation toward the frozen source model: DELTA (as in the Renofeation code),
DELTA-R and Renofeation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.base import TGModel
from .base import TransferMethod


def check_stage_shapes(student: list[torch.Tensor], teacher: list[torch.Tensor] | None,
                       method: str) -> list[torch.Tensor]:
    """Validate that a teacher's stage outputs line up with the student's."""
    if teacher is None:
        raise ConfigError(f"method {method!r} distils features: fit() needs teacher=<source model>")
    if len(student) != len(teacher):
        raise ConfigError(f"{method}: student has {len(student)} stages, teacher {len(teacher)}")
    for i, (s, t) in enumerate(zip(student, teacher, strict=True)):
        if s.shape != t.shape:
            raise ConfigError(f"{method}: stage {i} shapes differ: student {tuple(s.shape)}, "
                              f"teacher {tuple(t.shape)}")
    return teacher


class FeatureDistillation(TransferMethod):
    """``lambda_feat * sum_stages MSE(student_stage, teacher_stage)`` — Renofeation's "DELTA".

    This is the *plain* feature-matching variant the Renofeation code calls DELTA: every stage
    output is matched with an unweighted mean-squared error (mean over batch, channels and
    positions), the teacher (the source model) frozen in eval mode. The original DELTA paper
    weights channels by attention: see ``delta-attention``. Student stage outputs are taken after
    spatial dropout, so with ``dropout > 0`` the *dropped* features are matched (Renofeation's
    "noisy" distillation). The head gets the usual ``head_weight_decay`` (Renofeation: 1e-2).
    """

    name = "delta"
    needs_teacher = True
    init_from_source = True
    #: Renofeation's per-dataset tuned DELTA values were 0.1-10; 0.1 is the most common.
    default_lambda_feat = 0.1

    def regularizer(self, model: TGModel, x: torch.Tensor, stage_outs: list[torch.Tensor],
                    feats: torch.Tensor, teacher_stage_outs: list[torch.Tensor] | None
                    ) -> torch.Tensor:
        teacher = check_stage_shapes(stage_outs, teacher_stage_outs, self.name)
        total = feats.new_zeros(())
        for s, t in zip(stage_outs, teacher, strict=True):
            total = total + F.mse_loss(s, t.detach())
        return self.lambda_feat * total


class DeltaR(FeatureDistillation):
    """DELTA-R: random initialisation + plain feature distillation (Renofeation's ablation)."""

    name = "delta-r"
    init_from_source = False
    default_lambda_feat = 5.0


class Renofeation(DeltaR):
    """Renofeation (Chin et al., CVPRW 2021): re-training with noisy feature distillation.

    Random initialisation + feature distillation (``lambda_feat = 5``) + spatial dropout
    ``Dropout2d(0.1)`` after every distilled stage + a stochastic-weight-averaging stage
    (paper: 30k iterations at constant lr 5e-3, averaging every 500, then BN re-estimation; the
    lengths come from :class:`~transferguard.training.SWAConfig`).
    """

    name = "renofeation"
    default_dropout = 0.1
    default_swa = True

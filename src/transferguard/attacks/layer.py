"""Intermediate-layer feature disruption: push stage ``l``'s output away from its clean value.

Label-free and source-only: PGD maximises ``‖f_l(x') − f_l(x)‖₂²`` (same maximiser and same
sign steps as the norm itself) under ``‖x' − x‖∞ ≤ ε``, for any stage ``l`` of a TGModel
(``stage=-1``, the default, is the last stage). The gradient vanishes at ``x' = x``, so the
random start is on by default.
"""

from __future__ import annotations

import torch
from torch import nn

from .engine import LinfThreat, LossFn, check_images, eval_mode, perturb
from .losses import FeatureFn, stage_split


def layer_loss(prefix: FeatureFn, x: torch.Tensor) -> LossFn:
    """``‖prefix(x') − prefix(x)‖₂²`` per sample (the clean features are computed once)."""
    with torch.no_grad():
        clean = prefix(x).detach()

    def _loss(v: torch.Tensor) -> torch.Tensor:
        return (prefix(v) - clean).flatten(1).pow(2).sum(dim=1)

    return _loss


def stage_setup(model: nn.Module, x: torch.Tensor, eps: float, stage: int, steps: int,
                step_size: float | None) -> tuple[LinfThreat, float, FeatureFn, FeatureFn,
                                                  torch.Tensor]:
    """What every stage-level attack starts from: the checked threat, the step size (default
    ``2.5·ε/steps``, as PGD's), the stage's ``(prefix, suffix)`` split and the detached images."""
    check_images(x)
    threat = LinfThreat(eps)
    step = 2.5 * threat.eps / max(steps, 1) if step_size is None else float(step_size)
    prefix, suffix = stage_split(model, stage)
    return threat, step, prefix, suffix, x.detach()


def layer_attack(model: nn.Module, x: torch.Tensor, eps: float, *, stage: int = -1,
                 steps: int = 10, step_size: float | None = None, random_start: bool = True,
                 restarts: int = 1, generator: torch.Generator | None = None,
                 momentum: float = 0.0, diversity: float = 0.0, diversity_scale: float = 0.9,
                 ti_kernel: int = 0) -> torch.Tensor:
    """Maximise the ℓ2 distortion of stage ``stage``'s features (see module doc).

    ``step_size`` defaults to ``2.5·ε/steps``; with ``restarts > 1`` each sample keeps the restart
    with the largest distortion. ``momentum``, ``diversity``/``diversity_scale`` and ``ti_kernel``
    are the MI/DI/TI options of :mod:`~transferguard.attacks.tricks`.
    """
    threat, step_size, prefix, _, x = stage_setup(model, x, eps, stage, steps, step_size)
    with eval_mode(model):
        loss = layer_loss(prefix, x)
        result = perturb(loss, x, threat, steps=steps, step_size=float(step_size),
                         random_start=random_start, restarts=restarts, generator=generator,
                         momentum=momentum, diversity=diversity,
                         diversity_scale=diversity_scale, ti_kernel=ti_kernel)
    return result.x_adv

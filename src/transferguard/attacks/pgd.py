"""L∞ PGD (Madry et al.) on a logit loss, with random start and best-of-restarts per sample."""

from __future__ import annotations

import torch
from torch import nn

from .engine import LinfThreat, check_images, eval_mode, perturb
from .losses import LogitLoss, check_labels, logit_loss, prediction_success


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 10,
        step_size: float | None = None, random_start: bool = True, restarts: int = 1,
        targeted: bool = False, loss: str | LogitLoss = "ce",
        generator: torch.Generator | None = None, momentum: float = 0.0,
        diversity: float = 0.0, diversity_scale: float = 0.9, ti_kernel: int = 0) -> torch.Tensor:
    """Projected sign-gradient ascent of ``loss`` inside the ε-ball ∩ [0, 1].

    ``step_size`` defaults to ``2.5·ε/steps`` (Madry et al.). ``loss`` is ``"ce"``, ``"cw"``
    (margin) or a callable ``(logits, y) -> (B,)``. With ``targeted=True`` ``y`` holds target
    classes and the loss is descended. With ``restarts > 1`` each sample keeps the restart that
    succeeds (misclassified / reaches the target) or, failing that, has the highest loss.
    Random starts are drawn from ``generator`` (the global RNG when ``None``). ``momentum``,
    ``diversity``/``diversity_scale`` and ``ti_kernel`` are the MI/DI/TI options of
    :mod:`~transferguard.attacks.tricks` (all off by default).
    """
    check_images(x)
    threat = LinfThreat(eps)
    y = check_labels(x, y)
    if step_size is None:
        step_size = 2.5 * threat.eps / max(steps, 1)
    with eval_mode(model):
        result = perturb(logit_loss(model, y, targeted=targeted, loss=loss), x, threat,
                         steps=steps, step_size=float(step_size), random_start=random_start,
                         restarts=restarts, generator=generator,
                         success_fn=prediction_success(model, y, targeted=targeted),
                         momentum=momentum, diversity=diversity,
                         diversity_scale=diversity_scale, ti_kernel=ti_kernel)
    return result.x_adv

"""MI-DI-TI-FGSM (Dong et al. 2018; Xie et al. 2019; Dong et al. 2019): iterative FGSM on the
cross-entropy with momentum, input diversity and translation-invariant gradient smoothing.

It needs labels in the source's label space, so it is for audits where source and target share
their classes (e.g. a target fine-tuned on the source's own task).
"""

from __future__ import annotations

import torch
from torch import nn

from .engine import LinfThreat, check_images, eval_mode, perturb
from .losses import check_labels, logit_loss


def mi_di_ti_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                  steps: int = 10, step_size: float | None = None, momentum: float = 1.0,
                  diversity: float = 0.5, diversity_scale: float = 0.9, ti_kernel: int = 5,
                  targeted: bool = False, random_start: bool = False,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``steps`` signed steps of ``ε/steps`` (default) from ``x`` on the CE of ``y``.

    Defaults follow the papers (μ = 1, DI probability 0.5, no random start) except the TI kernel,
    5×5 for ~32-pixel inputs instead of 15×15 for 299-pixel ones. With ``momentum = diversity =
    ti_kernel = 0`` it is I-FGSM (BIM). ``targeted=True`` descends the CE of target classes ``y``.
    """
    check_images(x)
    threat = LinfThreat(eps)
    y = check_labels(x, y)
    if step_size is None:
        step_size = threat.eps / max(steps, 1)
    with eval_mode(model):
        result = perturb(logit_loss(model, y, targeted=targeted), x, threat, steps=steps,
                         step_size=float(step_size), random_start=random_start,
                         generator=generator, momentum=momentum, diversity=diversity,
                         diversity_scale=diversity_scale, ti_kernel=ti_kernel)
    return result.x_adv

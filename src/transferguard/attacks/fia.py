"""FIA, the feature-importance-aware attack (Wang et al. 2021), crafted on the source alone.

The importance of stage ``l``'s features is the gradient of the source's logit for label ``y``
with respect to them, averaged over ``ensemble`` copies of the clean ``x`` whose pixels are
independently dropped (zeroed) with probability ``drop``, then normalised to unit ℓ2 norm per
image: ``Δ = Σ_n ∂z_y(x ⊙ M_n)/∂f_l``. The attack then **minimises** ``Σ Δ ⊙ f_l(x')`` (it
suppresses the features that support the label and boosts the ones against it) under
``‖x' − x‖∞ ≤ ε``.

Labels are optional: without ``y`` the source's own clean prediction is the label, which is what
an auditor has when the fine-tuned target's classes differ from the source's. With ``y`` it must
index the **source's** classes.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .engine import LossFn, eval_mode, perturb, uniform_like
from .layer import stage_setup
from .losses import FeatureFn, check_labels


def aggregate_gradient(prefix: FeatureFn, suffix: FeatureFn, x: torch.Tensor, y: torch.Tensor,
                       *, ensemble: int, drop: float,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """FIA's importance ``Σ_n ∂z_y/∂f_l`` at ``x ⊙ M_n`` (``M_n`` keeps a pixel w.p. 1 − drop),
    normalised to unit ℓ2 norm per sample. Gradients are taken w.r.t. the features only."""
    total = None
    for _ in range(ensemble):
        keep = (uniform_like(x, generator) >= drop).to(x.dtype)
        with torch.no_grad():
            h = prefix(x * keep)
        h = h.detach().requires_grad_(True)
        with torch.enable_grad():
            logit = suffix(h).gather(1, y.view(-1, 1)).sum()
            (grad,) = torch.autograd.grad(logit, h)
        total = grad if total is None else total + grad
    assert total is not None
    norm = total.flatten(1).norm(dim=1).clamp_min(torch.finfo(total.dtype).tiny)
    return total / norm.view(-1, *([1] * (total.ndim - 1)))


def fia_loss(prefix: FeatureFn, weights: torch.Tensor) -> LossFn:
    """``−Σ weights ⊙ prefix(x')`` per sample (maximised, i.e. the weighted features minimised)."""

    def _loss(v: torch.Tensor) -> torch.Tensor:
        return -(weights * prefix(v)).flatten(1).sum(dim=1)

    return _loss


def fia_attack(model: nn.Module, x: torch.Tensor, eps: float, y: torch.Tensor | None = None, *,
               stage: int = -1, ensemble: int = 30, drop: float = 0.3, steps: int = 10,
               step_size: float | None = None, random_start: bool = False,
               generator: torch.Generator | None = None, momentum: float = 0.0,
               diversity: float = 0.0, diversity_scale: float = 0.9,
               ti_kernel: int = 0) -> torch.Tensor:
    """FIA at stage ``stage`` (see module doc); ``y`` defaults to the source's clean prediction.

    ``ensemble`` (N) masked copies with pixel-drop probability ``drop`` (p) build the importance;
    masks and then the PGD start/DI draws come from ``generator`` in that order. ``step_size``
    defaults to ``2.5·ε/steps``. ``momentum``, ``diversity``/``diversity_scale`` and ``ti_kernel``
    are the MI/DI/TI options of :mod:`~transferguard.attacks.tricks`.
    """
    if isinstance(ensemble, bool) or not isinstance(ensemble, int) or ensemble < 1:
        raise ConfigError(f"ensemble must be an integer >= 1, got {ensemble!r}")
    if not 0.0 <= float(drop) < 1.0:
        raise ConfigError(f"drop is a probability in [0, 1), got {drop!r}")
    threat, step_size, prefix, suffix, x = stage_setup(model, x, eps, stage, steps, step_size)
    with eval_mode(model):
        if y is None:
            with torch.no_grad():
                y = model(x).argmax(dim=1)
        y = check_labels(x, y)
        weights = aggregate_gradient(prefix, suffix, x, y, ensemble=ensemble, drop=float(drop),
                                     generator=generator)
        result = perturb(fia_loss(prefix, weights), x, threat, steps=steps,
                         step_size=float(step_size), random_start=random_start,
                         generator=generator, momentum=momentum, diversity=diversity,
                         diversity_scale=diversity_scale, ti_kernel=ti_kernel)
    return result.x_adv

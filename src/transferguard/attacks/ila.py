"""ILA-style projection (Huang et al. 2019, the ILAP loss), crafted on the source alone.

A reference adversarial ``x_ref`` (a few steps of the label-free :mod:`layer` attack, of PGD on
the source's own predictions, or a given batch) fixes a direction at stage ``l``:
``Δ_ref = f_l(x_ref) − f_l(x)``. The attack then maximises the projection
``⟨f_l(x') − f_l(x), Δ_ref⟩ / ‖Δ_ref‖`` under ``‖x' − x‖∞ ≤ ε``, starting from ``x``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .engine import LossFn, eval_mode, perturb
from .layer import layer_attack, stage_setup
from .losses import FeatureFn, check_labels
from .pgd import pgd


def ila_loss(prefix: FeatureFn, x: torch.Tensor, x_ref: torch.Tensor) -> LossFn:
    """``⟨prefix(x') − prefix(x), Δ̂⟩`` per sample with ``Δ̂ = Δ_ref / ‖Δ_ref‖`` (0 when Δ_ref = 0)."""
    with torch.no_grad():
        clean = prefix(x).detach()
        delta = (prefix(x_ref) - clean).detach()
    norm = delta.flatten(1).norm(dim=1).clamp_min(torch.finfo(delta.dtype).tiny)
    direction = delta / norm.view(-1, *([1] * (delta.ndim - 1)))

    def _loss(v: torch.Tensor) -> torch.Tensor:
        return ((prefix(v) - clean) * direction).flatten(1).sum(dim=1)

    return _loss


def ila_attack(model: nn.Module, x: torch.Tensor, eps: float, y: torch.Tensor | None = None, *,
               stage: int = -1, reference: str | torch.Tensor = "layer",
               reference_steps: int = 5, steps: int = 10, step_size: float | None = None,
               random_start: bool = False, generator: torch.Generator | None = None,
               momentum: float = 0.0, diversity: float = 0.0, diversity_scale: float = 0.9,
               ti_kernel: int = 0) -> torch.Tensor:
    """ILA projection at stage ``stage`` (see module doc).

    ``reference`` is ``"layer"`` (``reference_steps`` steps of :func:`layer_attack` at the same
    stage; label-free), ``"pgd"`` (``reference_steps`` PGD steps on ``y`` or, without ``y``, on
    the source's own clean predictions) or a tensor holding ``x_ref`` itself (it should lie in the
    ε-ball; only its stage-``l`` direction is used). Reference draws, then the PGD start and DI
    draws, come from ``generator``. ``step_size`` defaults to ``2.5·ε/steps``. ``momentum``,
    ``diversity``/``diversity_scale`` and ``ti_kernel`` are the MI/DI/TI options of
    :mod:`~transferguard.attacks.tricks`.
    """
    threat, step_size, prefix, _, x = stage_setup(model, x, eps, stage, steps, step_size)
    if isinstance(reference, torch.Tensor):
        if reference.shape != x.shape:
            raise ConfigError(f"reference batch has shape {tuple(reference.shape)}, "
                              f"expected {tuple(x.shape)}")
        x_ref = reference.detach().to(device=x.device, dtype=x.dtype)
    elif reference == "layer":
        x_ref = layer_attack(model, x, threat.eps, stage=stage, steps=reference_steps,
                             generator=generator)
    elif reference == "pgd":
        with eval_mode(model), torch.no_grad():
            labels = model(x).argmax(dim=1) if y is None else check_labels(x, y)
        x_ref = pgd(model, x, labels, threat.eps, steps=reference_steps, generator=generator)
    else:
        raise ConfigError(f"reference must be 'layer', 'pgd' or a tensor, got {reference!r}")
    with eval_mode(model):
        result = perturb(ila_loss(prefix, x, x_ref), x, threat, steps=steps,
                         step_size=float(step_size), random_start=random_start,
                         generator=generator, momentum=momentum, diversity=diversity,
                         diversity_scale=diversity_scale, ti_kernel=ti_kernel)
    return result.x_adv

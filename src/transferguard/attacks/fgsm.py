"""FGSM (Goodfellow et al.): one signed-gradient step of size ε, and a many-ε sweep from one gradient."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .engine import check_eps, check_images, eval_mode, input_gradient
from .losses import check_labels, logit_loss


def _ce_sign(model: nn.Module, x: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    with eval_mode(model):
        grad, _ = input_gradient(logit_loss(model, y, targeted=targeted), x)
    return grad.sign()


def _apply(x: torch.Tensor, sign: torch.Tensor, eps: float) -> torch.Tensor:
    """``clamp(x + ε·sign, 0, 1)``, bit-identical to :class:`LinfThreat`'s step then project.

    ``ε·sign`` is exact (sign ∈ {−1, 0, 1}), so ``x + ε·sign`` already lies in ``[x − ε, x + ε]``
    and the ball's projection is the identity: two elementwise passes instead of eight (on a GPU
    the sweep's k budgets are that many small kernels beside one forward and backward).
    """
    return torch.add(x, sign, alpha=eps).clamp_(0.0, 1.0)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *,
         targeted: bool = False) -> torch.Tensor:
    """``clamp(x + ε·sign(∇x CE(model(x), y)), 0, 1)``.

    With ``targeted=True`` ``y`` is the target class and the step descends its cross-entropy.
    """
    check_images(x)
    eps = check_eps(eps)
    y = check_labels(x, y)
    x = x.detach()
    return _apply(x, _ce_sign(model, x, y, targeted), eps).detach()


def fgsm_sweep(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               eps_list: Iterable[float], *, targeted: bool = False) -> dict[float, torch.Tensor]:
    """FGSM at every ε from a single forward/backward pass (the sign does not depend on ε).

    Bit-identical to calling :func:`fgsm` once per ε, at a fraction of the cost.
    """
    check_images(x)
    eps_values = [check_eps(e) for e in eps_list]
    y = check_labels(x, y)
    x = x.detach()
    sign = _ce_sign(model, x, y, targeted)
    return {eps: _apply(x, sign, eps).detach() for eps in eps_values}

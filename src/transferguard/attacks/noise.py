"""The noise control: uniform random noise of the same L∞ budget as an attack.

Small grey images (digits, Fashion-MNIST) can be fragile to plain noise at 16/255, so an attack's
success only means something next to the accuracy under noise of the same ε.
"""

from __future__ import annotations

import torch

from .engine import check_eps, check_images, uniform_like


def uniform_noise(x: torch.Tensor, eps: float, *,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``clamp(x + U(−ε, ε), 0, 1)``, drawn from ``generator`` (the global RNG when ``None``)."""
    check_images(x)
    eps = check_eps(eps)
    x = x.detach()
    return (x + (uniform_like(x, generator) * 2.0 - 1.0) * eps).clamp_(0.0, 1.0)

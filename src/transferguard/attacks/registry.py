"""Name → attack registry with one calling convention for experiments and the CLI.

Every entry is called as ``ATTACKS[name](model, x, y=None, **options)`` and every option,
including ``eps`` (8/255 in pixel units), has a default. ``"feature"`` ignores ``y`` (unless
``select_with`` is given) and ``"noise"`` ignores the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .feature import feature_attack
from .fgsm import fgsm
from .noise import uniform_noise
from .pgd import pgd

DEFAULT_EPS = 8 / 255


def _fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
          eps: float = DEFAULT_EPS, targeted: bool = False) -> torch.Tensor:
    return fgsm(model, x, y, eps, targeted=targeted)


def _pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
         eps: float = DEFAULT_EPS, **options: Any) -> torch.Tensor:
    return pgd(model, x, y, eps, **options)


def _feature(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
             eps: float = DEFAULT_EPS, **options: Any) -> torch.Tensor:
    return feature_attack(model, x, eps, y=y, **options)


def _noise(model: nn.Module | None, x: torch.Tensor, y: torch.Tensor | None = None, *,
           eps: float = DEFAULT_EPS, generator: torch.Generator | None = None) -> torch.Tensor:
    return uniform_noise(x, eps, generator=generator)


ATTACKS: dict[str, Callable[..., torch.Tensor]] = {
    "fgsm": _fgsm,
    "pgd": _pgd,
    "feature": _feature,
    "noise": _noise,
}

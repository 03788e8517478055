"""Transferability options of the shared iterative loop: momentum (MI), input diversity (DI) and
translation-invariant gradient smoothing (TI).

Every iterative attack (PGD, the feature, layer, FIA and ILA attacks, MI-DI-TI-FGSM) accepts
``momentum``, ``diversity``, ``diversity_scale`` and ``ti_kernel`` and hands them to
:func:`~transferguard.attacks.engine.perturb`. With ``momentum = diversity = ti_kernel = 0`` (the
defaults everywhere except MI-DI-TI-FGSM) the loop takes exactly its plain code path, so results
are bit-identical to the loop without these options and no random number is drawn for them.

One step with every option on, in this order:

1. **DI** (Xie et al. 2019): with probability ``diversity`` the loss sees a randomly resized and
   zero-padded copy of ``x_adv`` (one draw for the whole batch, from ``generator``): nearest
   resize to ``h ∈ [⌈scale·H⌉, H]`` (width in proportion), then pad back to ``H×W`` at a random
   offset, so the model sees its usual input size;
2. **TI** (Dong et al. 2019): the input gradient is convolved, channel by channel (depthwise, zero
   padding), with a normalised ``ti_kernel × ti_kernel`` Gaussian spanning ±3σ;
3. **MI** (Dong et al. 2018): ``g ← μ·g + ∇ / mean|∇|`` per sample, and the step follows
   ``sign(g)``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError

#: ``(height, width, top, left)`` of one input-diversity draw.
DiversityDraw = tuple[int, int, int, int]


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class TransferTricks:
    """Validated MI / DI / TI options (see the module doc). ``active`` is false when all are off."""

    momentum: float = 0.0
    diversity: float = 0.0
    diversity_scale: float = 0.9
    ti_kernel: int = 0

    def __post_init__(self) -> None:
        momentum = float(self.momentum)
        if not math.isfinite(momentum) or momentum < 0:
            raise ConfigError(f"momentum must be a finite number >= 0, got {self.momentum!r}")
        diversity = float(self.diversity)
        if not 0.0 <= diversity <= 1.0:
            raise ConfigError(f"diversity is a probability in [0, 1], got {self.diversity!r}")
        scale = float(self.diversity_scale)
        if not 0.0 < scale <= 1.0:
            raise ConfigError(f"diversity_scale must be in (0, 1], got {self.diversity_scale!r}")
        kernel = _check_int("ti_kernel", self.ti_kernel)
        if kernel < 0 or (kernel and kernel % 2 == 0):
            raise ConfigError(f"ti_kernel must be 0 (off) or an odd size >= 1, got {kernel}")
        object.__setattr__(self, "momentum", momentum)
        object.__setattr__(self, "diversity", diversity)
        object.__setattr__(self, "diversity_scale", scale)
        object.__setattr__(self, "ti_kernel", kernel)

    @property
    def active(self) -> bool:
        return self.momentum > 0 or self.diversity > 0 or self.ti_kernel > 0

    def check_input(self, x: torch.Tensor) -> None:
        if (self.diversity > 0 or self.ti_kernel > 0) and x.ndim != 4:
            raise ConfigError("input diversity and TI smoothing need image batches (B, C, H, W), "
                              f"got shape {tuple(x.shape)}")


def gaussian_kernel(size: int, nsig: float = 3.0, *, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """``size × size`` Gaussian on ``[−nsig·σ, nsig·σ]²``, summing to 1 and exactly symmetric.

    As in the TI code: the grid spans ±``nsig`` standard deviations, so σ = (size − 1)/(2·nsig)
    pixels; ``size = 1`` is the identity kernel ``[[1]]``.
    """
    size = _check_int("kernel size", size)
    if size < 1 or size % 2 == 0:
        raise ConfigError(f"the Gaussian kernel size must be odd and >= 1, got {size}")
    if size == 1:
        return torch.ones(1, 1, dtype=dtype, device=device)
    # Offsets from the centre are exact half-integers, so the grid is exactly symmetric.
    t = (torch.arange(size, dtype=torch.float64) - (size - 1) / 2) * (2 * nsig / (size - 1))
    g = torch.exp(-0.5 * t * t)
    kernel = torch.outer(g, g)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def smooth_gradient(grad: torch.Tensor, size: int) -> torch.Tensor:
    """TI: convolve each channel of ``grad`` (B, C, H, W) with :func:`gaussian_kernel` (zero pad)."""
    if grad.ndim != 4:
        raise ConfigError(f"TI smoothing needs (B, C, H, W) gradients, got {tuple(grad.shape)}")
    channels = grad.shape[1]
    weight = gaussian_kernel(size, dtype=grad.dtype, device=grad.device)
    weight = weight.expand(channels, 1, size, size).contiguous()
    return F.conv2d(grad, weight, padding=size // 2, groups=channels)


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in ``[low, high]`` (inclusive) from ``generator``."""
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(low, high + 1, (), generator=generator, device=device))


def _uniform(generator: torch.Generator | None) -> float:
    device = generator.device if generator is not None else "cpu"
    return float(torch.rand((), generator=generator, device=device))


def draw_diversity(shape: torch.Size | tuple[int, ...], probability: float, scale: float,
                   generator: torch.Generator | None = None) -> DiversityDraw | None:
    """One DI draw for a batch of ``shape``: ``None`` (no transform) or ``(h, w, top, left)``.

    The first draw decides (``U < probability``), then come the height, the top and the left
    offset; nothing is drawn when ``probability == 0``.
    """
    if probability <= 0:
        return None
    if _uniform(generator) >= probability:
        return None
    height, width = int(shape[-2]), int(shape[-1])
    h = _randint(max(1, math.ceil(scale * height)), height, generator)
    w = min(width, max(1, round(h * width / height)))
    top = _randint(0, height - h, generator)
    left = _randint(0, width - w, generator)
    return h, w, top, left


def apply_diversity(x: torch.Tensor, draw: DiversityDraw | None) -> torch.Tensor:
    """Nearest-resize ``x`` to ``(h, w)`` and zero-pad it back to its size at ``(top, left)``."""
    if draw is None:
        return x
    h, w, top, left = draw
    height, width = x.shape[-2:]
    small = F.interpolate(x, size=(h, w), mode="nearest")
    return F.pad(small, (left, width - w - left, top, height - h - top), value=0.0)


def input_diversity(x: torch.Tensor, probability: float = 1.0, scale: float = 0.9,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """DI transform of a batch (see :func:`draw_diversity` and :func:`apply_diversity`)."""
    return apply_diversity(x, draw_diversity(x.shape, probability, scale, generator))


def momentum_update(velocity: torch.Tensor | None, grad: torch.Tensor,
                    momentum: float) -> torch.Tensor:
    """MI: ``μ·velocity + grad / mean|grad|`` per sample (``velocity = None`` on the first step)."""
    scale = grad.abs().flatten(1).mean(dim=1).clamp_min(torch.finfo(grad.dtype).tiny)
    normed = grad / scale.view(-1, *([1] * (grad.ndim - 1)))
    return normed if velocity is None else momentum * velocity + normed

"""The perturbation engine: an L∞ threat model and a loss-agnostic projected-gradient loop.

The split follows the MadryLab ``robustness`` design: the *threat model* (:class:`LinfThreat`)
knows how to start, step and project inside the ε-ball ∩ [0, 1]; the *loop* (:func:`perturb`) only
asks a loss callable for a per-sample value to **maximise** and the threat model for the moves.
FGSM, PGD and the penultimate-feature attack are all thin wrappers that pick a loss.

Every attack works in pixel space (images in [0, 1], the model owns its normalisation), puts the
model in eval mode for its duration and restores each submodule's previous mode afterwards, and
takes gradients with respect to the input only via :func:`torch.autograd.grad`, so no parameter
``.grad`` is ever written.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .tricks import (
    TransferTricks,
    apply_diversity,
    draw_diversity,
    momentum_update,
    smooth_gradient,
)

logger = logging.getLogger(__name__)

#: ``loss(x_adv) -> (B,)`` per-sample loss that the attack maximises.
LossFn = Callable[[torch.Tensor], torch.Tensor]
#: ``success(x_adv) -> (B,) bool``: whether the attack already reached its goal on each sample.
SuccessFn = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode, then restore every submodule's own previous mode.

    Restoring per submodule (rather than ``model.train(previous)``) keeps mixed states intact,
    e.g. a training model whose frozen batch-norm layers were deliberately left in eval mode.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def check_eps(eps: float) -> float:
    """Validate an L∞ budget in pixel units and return it as a float."""
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise ConfigError(f"eps must be a number, got {eps!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"eps must be a finite number >= 0 (pixel units in [0, 1]), got {eps!r}")
    return value


def check_images(x: torch.Tensor) -> None:
    """Attacks need a floating batch; values are expected in [0, 1]."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ConfigError("attack inputs must be a floating-point tensor of images in [0, 1]")
    if x.ndim < 2:
        raise ConfigError(f"attack inputs must be a batch (B, ...), got shape {tuple(x.shape)}")


def uniform_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """U[0, 1) noise shaped like ``x``, drawn on the generator's device then moved to ``x``'s."""
    device = generator.device if generator is not None else x.device
    return torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)


@dataclass(frozen=True)
class LinfThreat:
    """L∞ threat model of radius ``eps`` intersected with the image box [0, 1].

    ``step`` moves by ``step_size · sign(grad)`` (steepest ascent for L∞); ``project`` clips into
    ``[x − ε, x + ε] ∩ [0, 1]``; ``random_start`` draws ``x + U(−ε, ε)`` and projects.
    """

    eps: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", check_eps(self.eps))

    def random_start(self, x: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        noise = (uniform_like(x, generator) * 2.0 - 1.0) * self.eps
        return self.project(x + noise, x)

    def step(self, x_adv: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        return x_adv + step_size * grad.sign()

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.min(torch.max(x_adv, x - self.eps), x + self.eps).clamp_(0.0, 1.0)


def input_gradient(loss_fn: LossFn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(∇x Σ loss, per-sample loss)`` without touching any parameter's ``.grad``."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_fn(x)
        if loss.ndim != 1 or loss.shape[0] != x.shape[0]:
            raise ValueError(f"attack losses must be per-sample (shape ({x.shape[0]},)), "
                             f"got {tuple(loss.shape)}")
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return grad, loss.detach()


def _tricked_gradient(loss_fn: LossFn, x_adv: torch.Tensor, tricks: TransferTricks,
                      velocity: torch.Tensor | None, generator: torch.Generator | None,
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The step direction with DI, then TI, then MI applied (each only when on)."""
    draw = draw_diversity(x_adv.shape, tricks.diversity, tricks.diversity_scale, generator)
    if draw is None:
        grad, _ = input_gradient(loss_fn, x_adv)
    else:
        grad, _ = input_gradient(lambda v: loss_fn(apply_diversity(v, draw)), x_adv)
    if tricks.ti_kernel:
        grad = smooth_gradient(grad, tricks.ti_kernel)
    if tricks.momentum > 0:
        velocity = momentum_update(velocity, grad, tricks.momentum)
        grad = velocity
    return grad, velocity


@dataclass
class PerturbResult:
    """Output of :func:`perturb`: the adversarial batch and, with restarts, its final loss/success."""

    x_adv: torch.Tensor
    loss: torch.Tensor | None = None
    success: torch.Tensor | None = None


def perturb(loss_fn: LossFn, x: torch.Tensor, threat: LinfThreat, *, steps: int,
            step_size: float, random_start: bool = True, restarts: int = 1,
            generator: torch.Generator | None = None,
            success_fn: SuccessFn | None = None, momentum: float = 0.0,
            diversity: float = 0.0, diversity_scale: float = 0.9,
            ti_kernel: int = 0) -> PerturbResult:
    """Projected sign-gradient ascent of ``loss_fn`` inside ``threat``, with optional restarts.

    ``momentum``, ``diversity`` (with ``diversity_scale``) and ``ti_kernel`` are the MI, DI and TI
    transferability options of :mod:`~transferguard.attacks.tricks`; with all three at 0 (the
    default) the loop is the plain one, bit for bit, and draws no extra random numbers. DI draws
    come from ``generator`` after the restart's random start; momentum restarts at zero with
    every restart.

    Each restart runs ``steps`` iterations from its own start (drawn from ``generator`` in order,
    so restart 0 is the single-restart run). With ``restarts > 1`` each sample keeps the restart
    that succeeded (``success_fn``) or, among equally (un)successful ones, the highest final loss.
    The caller is responsible for eval mode (see :func:`eval_mode`).
    """
    check_images(x)
    if steps < 0:
        raise ConfigError(f"steps must be >= 0, got {steps}")
    if restarts < 1:
        raise ConfigError(f"restarts must be >= 1, got {restarts}")
    if not math.isfinite(step_size) or step_size < 0:
        raise ConfigError(f"step_size must be a finite number >= 0, got {step_size}")
    tricks = TransferTricks(momentum, diversity, diversity_scale, ti_kernel)
    tricks.check_input(x)
    x = x.detach()
    best: PerturbResult | None = None
    for restart in range(restarts):
        x_adv = threat.random_start(x, generator) if random_start else x.clone()
        velocity: torch.Tensor | None = None
        for _ in range(steps):
            if tricks.active:
                grad, velocity = _tricked_gradient(loss_fn, x_adv, tricks, velocity, generator)
            else:
                grad, _ = input_gradient(loss_fn, x_adv)
            x_adv = threat.project(threat.step(x_adv, grad, step_size), x)
        if restarts == 1:
            return PerturbResult(x_adv.detach())
        with torch.no_grad():
            loss = loss_fn(x_adv).detach()
            success = (success_fn(x_adv).bool() if success_fn is not None
                       else torch.zeros_like(loss, dtype=torch.bool))
        if best is None:
            best = PerturbResult(x_adv.detach(), loss, success)
            continue
        better = (success & ~best.success) | ((success == best.success) & (loss > best.loss))
        logger.debug("restart %d improves %d/%d samples", restart, int(better.sum()), len(x))
        mask = better.view(-1, *([1] * (x.ndim - 1)))
        best = PerturbResult(torch.where(mask, x_adv, best.x_adv),
                             torch.where(better, loss, best.loss),
                             best.success | success)
    assert best is not None
    return best

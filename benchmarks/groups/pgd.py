"""``pgd`` group: 40-step PGD against bare PyTorch loops of identical math.

PGD with cross-entropy and the penultimate-feature attack (fixed neuron), each against a bare
loop; the outputs are checked to be bit-identical (``bare_pgd_ce`` and ``bare_pgd_feature`` are
also what the smoke test compares with the library).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from harness import Case, Row, Settings, interleaved, make_model, med, paired_ratio


def bare_pgd_ce(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                steps: int, alpha: float, gen: torch.Generator) -> torch.Tensor:
    """Textbook L∞ PGD with a uniform random start (the reference of identical math)."""
    x_adv = x + (torch.rand(x.shape, generator=gen) * 2.0 - 1.0) * eps
    x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
    for _ in range(steps):
        xa = x_adv.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="none").sum()
        (grad,) = torch.autograd.grad(loss, xa)
        x_adv = torch.min(torch.max(x_adv + alpha * grad.sign(), x - eps), x + eps).clamp_(0.0, 1.0)
    return x_adv


def bare_pgd_feature(model: Any, x: torch.Tensor, eps: float, steps: int, alpha: float,
                     neuron: int, m: float, gen: torch.Generator) -> torch.Tensor:
    """PGD minimising ‖f(x) − m·e_k‖² on penultimate features (reference of identical math)."""
    x_adv = x + (torch.rand(x.shape, generator=gen) * 2.0 - 1.0) * eps
    x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
    target = torch.zeros(len(x), model.feature_dim)
    target[:, neuron] = m
    for _ in range(steps):
        xa = x_adv.detach().requires_grad_(True)
        loss = -(model.forward_features(xa) - target).pow(2).sum(dim=1).sum()
        (grad,) = torch.autograd.grad(loss, xa)
        x_adv = torch.min(torch.max(x_adv + alpha * grad.sign(), x - eps), x + eps).clamp_(0.0, 1.0)
    return x_adv


def run(s: Settings) -> list[Row]:
    """40-step PGD (CE) and the feature attack (fixed neuron) vs bare loops; outputs compared."""
    from transferguard.attacks import feature_attack, pgd

    model = make_model("dtn", seed=0).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(s.pgd_batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (s.pgd_batch,), generator=g)
    eps, alpha, steps = 8 / 255, 2 / 255, s.pgd_steps
    outputs: dict[str, torch.Tensor] = {}

    def case(name: str, fn: Callable[[torch.Generator], torch.Tensor]) -> Case:
        def setup() -> Callable[[], None]:
            gen = torch.Generator().manual_seed(7)

            def timed() -> None:
                outputs[name] = fn(gen)

            return timed

        return setup

    rows = []
    variants = {
        "ce": (lambda gen: pgd(model, x, y, eps, steps=steps, step_size=alpha, generator=gen),
               lambda gen: bare_pgd_ce(model, x, y, eps, steps, alpha, gen)),
        "feature": (lambda gen: feature_attack(model, x, eps, steps=steps, step_size=alpha,
                                               neuron=0, generator=gen),
                    lambda gen: bare_pgd_feature(model, x, eps, steps, alpha, 0, 1000.0, gen)),
    }
    for loss, (ours_fn, bare_fn) in variants.items():
        runs = interleaved({"ours": case("ours", ours_fn), "bare": case("bare", bare_fn)},
                           s.reps, s.warmup)
        same = torch.equal(outputs["ours"], outputs["bare"])
        label = "cross-entropy" if loss == "ce" else "feature loss, neuron 0"
        rows.append(Row(f"pgd-{steps} {label}: throughput vs bare loop", med(runs["ours"]),
                        med(runs["bare"]), "s", paired_ratio(runs["bare"], runs["ours"]), ">=",
                        0.95, "bare PyTorch PGD loop",
                        f"DTN 32x32 batch {s.pgd_batch}; outputs bit-identical: {same}"))
    return rows

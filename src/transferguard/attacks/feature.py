"""The penultimate-feature attack of Rezaei et al. (used by Renofeation's threat model).

The attacker holds only the public pre-trained model. PGD minimises ``‖f_K(x+δ) − m·e_k‖²`` on
its penultimate features ``f_K`` (``m = 1000``) under ``‖δ‖∞ ≤ ε``; the perturbed image is then
fed to fine-tuned models the attacker never queries.

Neuron choice:

* ``neuron=int`` — one fixed target neuron (the Renofeation code uses index 0);
* ``neuron="best"`` — try several candidate neurons and keep, per image, the best one. Rezaei et
  al. try every neuron and keep the one that fools the target; our attacker has no access to the
  target model, so "best" is judged **on the source model**: the candidate whose adversarial
  features lie farthest (ℓ2) from the clean features. ``candidates`` picks the set: an int K (the
  K neurons with the largest mean activation on the clean batch), ``"all"`` (every neuron, as in
  Rezaei et al.), or an explicit list;
* ``neuron=[i, j, ...]`` — same as ``"best"`` over exactly that list.

For analysis only, ``select_with=[models]`` judges candidates on given models instead: the one
that fools most of them (prediction differs from ``y`` when given, else from the model's clean
prediction), ties broken by the source feature distance. That is not a black-box attack.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .engine import LinfThreat, check_images, eval_mode, perturb
from .losses import FeatureFn, feature_extractor, feature_target_loss

logger = logging.getLogger(__name__)


def _run(feature_fn: FeatureFn, x: torch.Tensor, neurons: torch.Tensor, threat: LinfThreat, *,
         steps: int, step_size: float, m: float, restarts: int, random_start: bool,
         generator: torch.Generator | None, **tricks: float) -> torch.Tensor:
    loss = feature_target_loss(feature_fn, neurons, m)
    return perturb(loss, x, threat, steps=steps, step_size=step_size, random_start=random_start,
                   restarts=restarts, generator=generator, **tricks).x_adv


def _candidate_list(neuron: str | Sequence[int], candidates: int | str | Sequence[int],
                    clean_feats: torch.Tensor) -> list[int]:
    dim = clean_feats.shape[1]
    if not isinstance(neuron, str):
        chosen = [int(i) for i in neuron]
    elif neuron != "best":
        raise ConfigError(f"neuron must be an int, 'best' or a list of ints, got {neuron!r}")
    elif isinstance(candidates, str):
        if candidates != "all":
            raise ConfigError(f"candidates must be an int, 'all' or a list, got {candidates!r}")
        chosen = list(range(dim))
    elif isinstance(candidates, int):
        if candidates < 1:
            raise ConfigError(f"candidates must be >= 1, got {candidates}")
        order = clean_feats.mean(dim=0).argsort(descending=True)
        chosen = order[:min(candidates, dim)].tolist()
    else:
        chosen = [int(i) for i in candidates]
    chosen = list(dict.fromkeys(chosen))  # de-duplicate, keep order
    if not chosen:
        raise ConfigError("the feature attack needs at least one candidate neuron")
    bad = [i for i in chosen if not 0 <= i < dim]
    if bad:
        raise ConfigError(f"neuron indices {bad} out of range for {dim} penultimate features")
    return chosen


def _as_index(neuron: object) -> int | None:
    """The neuron as a single index (Python/NumPy int, 0-d tensor), or ``None`` for a set."""
    if isinstance(neuron, bool | str):
        return None
    try:
        return operator.index(neuron)
    except TypeError:
        return None


def _fooled_counts(models: Sequence[nn.Module], x: torch.Tensor, x_adv: torch.Tensor,
                   y: torch.Tensor | None) -> torch.Tensor:
    count = torch.zeros(len(x), dtype=torch.long, device=x.device)
    for model in models:
        with eval_mode(model), torch.no_grad():
            ref = y if y is not None else model(x).argmax(dim=1)
            count += (model(x_adv).argmax(dim=1) != ref).long()
    return count


def feature_attack(model: nn.Module, x: torch.Tensor, eps: float, *, steps: int = 40,
                   step_size: float = 0.01, m: float = 1000.0,
                   neuron: int | str | Sequence[int] = 0,
                   candidates: int | str | Sequence[int] = 8, restarts: int = 1,
                   random_start: bool = True, features: str = "post",
                   generator: torch.Generator | None = None, batch_neurons: int = 4,
                   select_with: Sequence[nn.Module] | None = None,
                   y: torch.Tensor | None = None, momentum: float = 0.0,
                   diversity: float = 0.0, diversity_scale: float = 0.9,
                   ti_kernel: int = 0) -> torch.Tensor:
    """PGD pushing the source model's penultimate features toward ``m·e_k`` (see module doc).

    ``features="pre"`` attacks ``forward_features_preact`` when the model has it (e.g.
    EfficientNet-Lite, whose ReLU6 caps the post-activation features at 6). ``batch_neurons``
    candidates are crafted together in one enlarged batch (speed vs memory). ``y`` is used only
    by ``select_with``. ``momentum``, ``diversity``/``diversity_scale`` and ``ti_kernel`` are the
    MI/DI/TI options of :mod:`~transferguard.attacks.tricks` (all off by default); with DI on,
    each candidate chunk draws its own transforms from ``generator``.
    """
    check_images(x)
    threat = LinfThreat(eps)
    if batch_neurons < 1:
        raise ConfigError(f"batch_neurons must be >= 1, got {batch_neurons}")
    feature_fn = feature_extractor(model, features)
    x = x.detach()
    kwargs = dict(steps=steps, step_size=float(step_size), m=float(m), restarts=restarts,
                  random_start=random_start, generator=generator, momentum=momentum,
                  diversity=diversity, diversity_scale=diversity_scale, ti_kernel=ti_kernel)
    with eval_mode(model):
        single = _as_index(neuron)
        if single is not None:
            # No clean forward pass here: one neuron needs no candidate ranking, and the loss
            # checks the index against the feature width on its first call.
            if single < 0:
                raise ConfigError(f"neuron {neuron} out of range (must be >= 0)")
            idx = torch.full((len(x),), single, dtype=torch.long, device=x.device)
            return _run(feature_fn, x, idx, threat, **kwargs)

        with torch.no_grad():
            clean = feature_fn(x).flatten(1)
        chosen = _candidate_list(neuron, candidates, clean)
        logger.debug("feature attack over %d candidate neurons", len(chosen))
        n = len(x)
        best_x = x.clone()
        best_dist = torch.full((n,), -1.0, device=x.device)
        best_fooled = torch.full((n,), -1, dtype=torch.long, device=x.device)
        for start in range(0, len(chosen), batch_neurons):
            chunk = chosen[start:start + batch_neurons]
            xr = x.repeat(len(chunk), *([1] * (x.ndim - 1)))
            idx = torch.tensor(chunk, dtype=torch.long, device=x.device).repeat_interleave(n)
            adv = _run(feature_fn, xr, idx, threat, **kwargs)
            with torch.no_grad():
                dist = (feature_fn(adv).flatten(1) - clean.repeat(len(chunk), 1)).norm(dim=1)
            for c in range(len(chunk)):
                adv_c, dist_c = adv[c * n:(c + 1) * n], dist[c * n:(c + 1) * n]
                if select_with:
                    fooled = _fooled_counts(select_with, x, adv_c, y)
                    better = (fooled > best_fooled) | ((fooled == best_fooled)
                                                       & (dist_c > best_dist))
                    best_fooled = torch.where(better, fooled, best_fooled)
                else:
                    better = dist_c > best_dist
                best_dist = torch.where(better, dist_c, best_dist)
                best_x = torch.where(better.view(-1, *([1] * (x.ndim - 1))), adv_c, best_x)
    return best_x

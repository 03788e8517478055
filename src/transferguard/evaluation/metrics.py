"""Robustness metrics of the two papers, as pure functions on predictions, models and tensors.

Conventions (documented choices):

* accuracies and rates are Python floats in [0, 1]; an undefined rate (an empty set, no sample
  correct on clean data, a zero white-box accuracy) is ``nan`` rather than an exception, so a
  results table can still be written and the hole is visible;
* model-based metrics run in eval mode and restore each submodule's previous mode;
* gradients are taken in pixel space [0, 1] (normalisation lives inside the model). The first
  paper's Figure 10 took them in its [−1, 1] input space, where every norm is half as large.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.engine import eval_mode
from ..attacks.transfer import model_device
from ..errors import ConfigError
from ..results import Metric

logger = logging.getLogger(__name__)


def _as_labels(t: torch.Tensor | np.ndarray | list, name: str) -> torch.Tensor:
    t = torch.as_tensor(t).detach().cpu()
    if t.ndim != 1:
        raise ConfigError(f"{name} must be a 1-D vector of labels, got shape {tuple(t.shape)}")
    return t.long()


def _aligned(*pairs: tuple[torch.Tensor, str]) -> list[torch.Tensor]:
    out = [_as_labels(t, name) for t, name in pairs]
    lengths = {len(t) for t in out}
    if len(lengths) > 1:
        names = ", ".join(f"{name}={len(t)}" for t, (_, name) in zip(out, pairs, strict=True))
        raise ConfigError(f"prediction/label vectors differ in length: {names}")
    return out


def _mean(mask: torch.Tensor) -> float:
    return float(mask.float().mean()) if len(mask) else math.nan


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``pred == y`` (``nan`` for an empty set)."""
    pred, y = _aligned((pred, "pred"), (y, "y"))
    return _mean(pred == y)


def adversarial_accuracy(clean_pred: torch.Tensor, adv_pred: torch.Tensor, y: torch.Tensor,
                         convention: str = "paper") -> float:
    """Accuracy under attack.

    ``"paper"`` (AttackTransferLearning's code): the fraction of the **whole** test set that is
    correct both clean and adversarial. ``"conditional"``: P(correct adversarial | correct clean),
    i.e. ``1 − attack_success_rate`` (``nan`` when nothing is correct clean).
    """
    clean_pred, adv_pred, y = _aligned((clean_pred, "clean_pred"), (adv_pred, "adv_pred"), (y, "y"))
    both = (clean_pred == y) & (adv_pred == y)
    if convention == "paper":
        return _mean(both)
    if convention == "conditional":
        n_clean = int((clean_pred == y).sum())
        return float(both.sum()) / n_clean if n_clean else math.nan
    raise ConfigError(f"convention must be 'paper' or 'conditional', got {convention!r}")


def attack_success_rate(clean_pred: torch.Tensor, adv_pred: torch.Tensor,
                        y: torch.Tensor) -> float:
    """Renofeation's ASR: P(wrong on adversarial | correct on clean).

    Samples already wrong on clean data are excluded; with no correct clean sample the rate is
    undefined and ``nan`` is returned.
    """
    clean_pred, adv_pred, y = _aligned((clean_pred, "clean_pred"), (adv_pred, "adv_pred"), (y, "y"))
    correct = clean_pred == y
    n_clean = int(correct.sum())
    if n_clean == 0:
        return math.nan
    return float((correct & (adv_pred != y)).sum()) / n_clean


def attack_metrics(clean_pred: torch.Tensor, adv_pred: torch.Tensor,
                   y: torch.Tensor) -> dict[str, float]:
    """The three numbers every attack report carries, by their result-table names:
    ``adv_acc`` (paper-1 convention), ``adv_acc_cond`` (accuracy among clean-correct) and ``asr``."""
    return {Metric.ADV_ACC.value: adversarial_accuracy(clean_pred, adv_pred, y, convention="paper"),
            Metric.ADV_ACC_COND.value: adversarial_accuracy(clean_pred, adv_pred, y,
                                                            convention="conditional"),
            Metric.ASR.value: attack_success_rate(clean_pred, adv_pred, y)}


def transferability_gamma(a_black: float | np.ndarray,
                          a_white: float | np.ndarray) -> float | np.ndarray:
    """The first paper's transferability ``γ = (a_b − a_w) / a_w``.

    ``a_b`` is the target model's accuracy under the black-box (source-crafted) attack, ``a_w``
    under the white-box attack. Smaller γ means the transferred attack is nearly as strong as
    the white-box one. Guard: ``a_w == 0`` gives ``nan`` (the ratio is undefined: the white-box
    attack already fooled everything, so no relative gap can be stated). Works element-wise on
    arrays; scalars in give a float out.
    """
    a_b = np.asarray(a_black, dtype=float)
    a_w = np.asarray(a_white, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(a_w == 0, np.nan, (a_b - a_w) / np.where(a_w == 0, 1.0, a_w))
    return float(gamma) if gamma.ndim == 0 else gamma


def _head_ids(model: nn.Module) -> set[int]:
    head = getattr(model, "head", None)
    return {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()


def weight_distance(model_a: nn.Module, model_b: nn.Module, *, exclude_head: bool = True) -> float:
    """ℓ2 norm of the difference of all same-name, same-shape parameters (buffers excluded).

    With ``exclude_head`` the classifier heads (``model.head``) are skipped: a fine-tuned model's
    new head has no counterpart in the pre-trained one. Renofeation plots ASR against this
    distance between the fine-tuned and the pre-trained weights.
    """
    skip_a = _head_ids(model_a) if exclude_head else set()
    skip_b = _head_ids(model_b) if exclude_head else set()
    params_b = {name: p for name, p in model_b.named_parameters() if id(p) not in skip_b}
    total = 0.0
    matched = 0
    with torch.no_grad():
        for name, pa in model_a.named_parameters():
            pb = params_b.get(name)
            if id(pa) in skip_a or pb is None or pb.shape != pa.shape:
                continue
            total += float((pa.detach().double().cpu() - pb.detach().double().cpu()).pow(2).sum())
            matched += 1
    if matched == 0:
        raise ConfigError("the two models share no parameter of the same name and shape")
    logger.debug("weight distance over %d matching parameters", matched)
    return math.sqrt(total)


def _batches(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size]


def _on(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    device = model_device(model)
    return xb.to(device) if device is not None else xb


def feature_distance(model_a: nn.Module, model_b: nn.Module, x: torch.Tensor, *,
                     reduction: str = "mean", batch_size: int = 256) -> float | torch.Tensor:
    """ℓ2 distance between the two models' penultimate features, per sample.

    ``reduction``: ``"mean"`` (float, the Renofeation "feature distance"), ``"sum"`` (float) or
    ``"none"`` (CPU tensor of per-sample distances).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    for model in (model_a, model_b):
        if not callable(getattr(model, "forward_features", None)):
            raise ConfigError(f"{type(model).__name__} has no forward_features(x)")
    dists = []
    with eval_mode(model_a), eval_mode(model_b), torch.inference_mode():
        for xb in _batches(x, batch_size):
            fa = model_a.forward_features(_on(model_a, xb)).flatten(1).cpu()
            fb = model_b.forward_features(_on(model_b, xb)).flatten(1).cpu()
            if fa.shape != fb.shape:
                raise ConfigError(f"feature shapes differ: {tuple(fa.shape)} vs {tuple(fb.shape)}")
            dists.append((fa.double() - fb.double()).norm(dim=1))
    d = torch.cat(dists) if dists else torch.empty(0, dtype=torch.float64)
    if reduction == "none":
        return d.float()
    if reduction == "sum":
        return float(d.sum())
    return float(d.mean()) if len(d) else math.nan


def feature_distillation_loss(student: nn.Module, teacher: nn.Module, x: torch.Tensor, *,
                              batch_size: int = 256) -> float:
    """Σ over stages of the MSE between student and teacher stage outputs, averaged over ``x``.

    This is the Renofeation "feature loss" (its Table 7), measured in eval mode (no dropout).
    Each stage's MSE is a mean over all of its elements; batches are weighted by their size, so
    the result does not depend on ``batch_size``.
    """
    for model in (student, teacher):
        if not callable(getattr(model, "forward_stages", None)):
            raise ConfigError(f"{type(model).__name__} has no forward_stages(x)")
    total = 0.0
    n = 0
    with eval_mode(student), eval_mode(teacher), torch.inference_mode():
        for xb in _batches(x, batch_size):
            s_outs, _ = student.forward_stages(_on(student, xb))
            t_outs, _ = teacher.forward_stages(_on(teacher, xb))
            if len(s_outs) != len(t_outs):
                raise ConfigError(f"student has {len(s_outs)} stages, teacher {len(t_outs)}")
            batch = 0.0
            for s, t in zip(s_outs, t_outs, strict=True):
                if s.shape != t.shape:
                    raise ConfigError(f"stage shapes differ: {tuple(s.shape)} vs {tuple(t.shape)}")
                batch += float(F.mse_loss(s.double().cpu(), t.double().cpu()))
            total += batch * len(xb)
            n += len(xb)
    return total / n if n else math.nan


def input_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                         p: float = 2, batch_size: int = 256) -> torch.Tensor:
    """Per-sample ``‖∇x CE(model(x), y)‖_p`` in pixel space (eval mode), as a CPU tensor.

    The first paper's Figure 10 histograms these norms for Scratch vs fine-tuned models. Only the
    input gradient is computed (``torch.autograd.grad``); parameter ``.grad`` stays untouched.
    """
    y = torch.as_tensor(y)
    if y.ndim != 1 or len(y) != len(x):
        raise ConfigError(f"y must be a label vector of length {len(x)}, got {tuple(y.shape)}")
    norms = []
    start = 0
    with eval_mode(model):
        for chunk in _batches(x, batch_size):
            xb = _on(model, chunk).detach().requires_grad_(True)
            yb = y[start:start + len(chunk)].to(xb.device).long()
            start += len(chunk)
            with torch.enable_grad():
                loss = F.cross_entropy(model(xb), yb, reduction="sum")
                (grad,) = torch.autograd.grad(loss, xb)
            norms.append(grad.flatten(1).norm(p=p, dim=1).detach().cpu())
    return torch.cat(norms) if norms else torch.empty(0)


def histogram(values: torch.Tensor | np.ndarray, bins: int | np.ndarray = 50, *,
              range: tuple[float, float] | None = None, cumulative: bool = False,
              density: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, edges)`` of ``values``; ``cumulative`` gives the running fraction (Fig. 10a).

    With ``density`` the counts integrate to 1; with ``cumulative`` they end at 1.
    """
    v = torch.as_tensor(values).detach().cpu().double().numpy().ravel()
    counts, edges = np.histogram(v, bins=bins, range=range, density=density and not cumulative)
    if cumulative:
        counts = np.cumsum(counts) / max(len(v), 1)
    return counts, edges

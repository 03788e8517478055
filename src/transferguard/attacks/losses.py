"""Attack objectives as per-sample losses to maximise, and the success tests used by restarts.

Each builder closes over the model and labels and returns ``loss(x_adv) -> (B,)``; the engine
never needs to know which objective it optimises. Targeted losses are negated so that
maximising them moves toward the target.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .engine import LossFn, SuccessFn

logger = logging.getLogger(__name__)

#: ``(logits, labels) -> (B,)`` per-sample loss on logits.
LogitLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
FeatureFn = Callable[[torch.Tensor], torch.Tensor]


def ce_logit_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy."""
    return F.cross_entropy(logits, y, reduction="none")


def margin_logit_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini–Wagner margin ``max_{j≠y} z_j − z_y`` (positive once misclassified)."""
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.amax(dim=1) - true


#: Named logit losses accepted by ``pgd(loss=...)``.
LOGIT_LOSSES: dict[str, LogitLoss] = {"ce": ce_logit_loss, "cw": margin_logit_loss}


def resolve_logit_loss(loss: str | LogitLoss) -> LogitLoss:
    if callable(loss):
        return loss
    try:
        return LOGIT_LOSSES[loss]
    except KeyError:
        raise ConfigError(f"unknown attack loss {loss!r}; choose from "
                          f"{sorted(LOGIT_LOSSES)} or pass a callable") from None


def check_labels(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Labels must be one integer per image."""
    if y is None:
        raise ConfigError("this attack needs labels y (true labels, or target classes if targeted)")
    if y.ndim != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise ConfigError(f"labels must be an integer vector of length {x.shape[0]}, "
                          f"got shape {tuple(y.shape)} dtype {y.dtype}")
    return y.to(x.device).long()


def logit_loss(model: nn.Module, y: torch.Tensor, *, targeted: bool = False,
               loss: str | LogitLoss = "ce") -> LossFn:
    """Loss to maximise: ``loss(model(x), y)``, negated when ``y`` is a target class."""
    fn = resolve_logit_loss(loss)
    sign = -1.0 if targeted else 1.0

    def _loss(x: torch.Tensor) -> torch.Tensor:
        return sign * fn(model(x), y)

    return _loss


def ce_loss(model: nn.Module, y: torch.Tensor) -> LossFn:
    """Untargeted cross-entropy toward misclassification."""
    return logit_loss(model, y)


def targeted_ce_loss(model: nn.Module, target: torch.Tensor) -> LossFn:
    """Negated cross-entropy of the target class (maximising it reaches the target)."""
    return logit_loss(model, target, targeted=True)


def prediction_success(model: nn.Module, y: torch.Tensor, *, targeted: bool = False) -> SuccessFn:
    """Success = misclassified (untargeted) or classified as the target (targeted)."""

    def _success(x: torch.Tensor) -> torch.Tensor:
        pred = model(x).argmax(dim=1)
        return pred == y if targeted else pred != y

    return _success


def feature_extractor(model: nn.Module, features: str = "post") -> FeatureFn:
    """Penultimate-feature function of a TGModel.

    ``"post"`` uses ``forward_features``. ``"pre"`` uses ``forward_features_preact`` (the pooled
    features before a capping activation such as EfficientNet-Lite's ReLU6, which makes
    ``m = 1000`` unreachable on the post-activation features); models without it fall back to
    ``forward_features`` with a log message, since their penultimate layer has no such cap.
    """
    if features not in ("post", "pre"):
        raise ConfigError(f"features must be 'post' or 'pre', got {features!r}")
    if features == "pre":
        fn = getattr(model, "forward_features_preact", None)
        if callable(fn):
            return fn
        logger.info("%s has no forward_features_preact; using forward_features",
                    type(model).__name__)
    fn = getattr(model, "forward_features", None)
    if not callable(fn):
        raise ConfigError(f"{type(model).__name__} has no forward_features(x); the feature "
                          "attack needs a model with penultimate features (a TGModel)")
    return fn


def feature_target_loss(feature_fn: FeatureFn, neuron: torch.Tensor, m: float) -> LossFn:
    """Rezaei et al.'s objective, negated to maximise: ``−‖f_K(x) − m·e_k‖²`` per sample.

    ``neuron`` holds one target index per sample, so several neurons can run in one batch. The
    target ``m·e_k`` is built once (PGD calls the loss at every step) and the indices are checked
    against the feature width on the first call, which raises :class:`ConfigError` when one is
    out of range.
    """
    cache: dict[tuple, torch.Tensor] = {}

    def _loss(x: torch.Tensor) -> torch.Tensor:
        feats = feature_fn(x).flatten(1)
        key = (feats.shape, feats.dtype, feats.device)
        target = cache.get(key)
        if target is None:
            dim = feats.shape[1]
            if len(neuron) and (int(neuron.min()) < 0 or int(neuron.max()) >= dim):
                bad = sorted({int(i) for i in neuron if not 0 <= int(i) < dim})
                raise ConfigError(f"neuron indices {bad} out of range for {dim} penultimate "
                                  "features")
            target = F.one_hot(neuron.to(feats.device), dim).to(feats.dtype) * m
            cache.clear()
            cache[key] = target
        return -(feats - target).pow(2).sum(dim=1)

    return _loss


def check_stage(model: nn.Module, stage: int) -> int:
    """Validate a stage index of a TGModel (negative counts from the end); return it as ``≥ 0``."""
    stages = getattr(model, "stages", None)
    needed = ("normalize", "stem", "neck", "head")
    if not isinstance(stages, nn.ModuleList) or not all(hasattr(model, a) for a in needed):
        raise ConfigError(f"{type(model).__name__} has no stages; intermediate-layer attacks need "
                          "a TGModel (normalize, stem, stages, neck, head)")
    if isinstance(stage, bool):
        raise ConfigError(f"stage must be an integer, got {stage!r}")
    try:
        index = operator.index(stage)
    except TypeError:
        raise ConfigError(f"stage must be an integer, got {stage!r}") from None
    count = len(stages)
    if not -count <= index < count:
        raise ConfigError(f"stage {stage} out of range for a model with {count} stages "
                          f"(valid: {-count} .. {count - 1})")
    return index % count


def stage_split(model: nn.Module, stage: int) -> tuple[FeatureFn, FeatureFn]:
    """``(prefix, suffix)``: ``prefix(x)`` is stage ``stage``'s output (after its dropout, as in
    ``forward_stages``) and ``suffix(h)`` the logits computed from it."""
    index = check_stage(model, stage)
    stages = model.stages
    drops = getattr(model, "drop", None) or [nn.Identity() for _ in stages]

    def prefix(x: torch.Tensor) -> torch.Tensor:
        h = model.stem(model.normalize(x))
        for i in range(index + 1):
            h = drops[i](stages[i](h))
        return h

    def suffix(h: torch.Tensor) -> torch.Tensor:
        for i in range(index + 1, len(stages)):
            h = drops[i](stages[i](h))
        return model.head(model.neck(h))

    return prefix, suffix

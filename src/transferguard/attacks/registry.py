"""Name → attack registries with one calling convention for experiments and the CLI.

Every entry is called as ``registry[name](model, x, y=None, eps=..., **options)`` and every
option, including ``eps`` (8/255 in pixel units), has a default.

* :data:`ATTACKS` — the CLI's original four (``fgsm``, ``pgd``, ``feature``, ``noise``) as plain
  functions. ``"feature"`` keeps the single-neuron default (``neuron=0``) and ignores ``y``
  (unless ``select_with`` is given); ``"noise"`` ignores the model.
* :data:`SUITE` — the transfer-attack suite for the fine-tuning threat, every entry an
  :class:`AttackEntry` (callable, with metadata): the four above plus ``mi-di-ti-fgsm``,
  ``layer``, ``fia`` and ``ila``. Its ``"feature"`` entry tries **all** penultimate neurons
  (``neuron="best", candidates="all"``, 16 per batch) unless options say otherwise.
  :func:`transfer_suite` lists what an audit should run; :data:`BUDGETS` (``fast``,
  ``thorough``) and :func:`suite_options` say how hard each entry tries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .feature import feature_attack
from .fgsm import fgsm
from .fia import fia_attack
from .ila import ila_attack
from .layer import layer_attack
from .mdti import mi_di_ti_fgsm
from .noise import uniform_noise
from .pgd import pgd

DEFAULT_EPS = 8 / 255


def _fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
          eps: float = DEFAULT_EPS, targeted: bool = False,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """FGSM draws nothing: ``generator`` is accepted (and unused) like every entry's."""
    return fgsm(model, x, y, eps, targeted=targeted)


def _pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
         eps: float = DEFAULT_EPS, **options: Any) -> torch.Tensor:
    return pgd(model, x, y, eps, **options)


def _feature(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
             eps: float = DEFAULT_EPS, **options: Any) -> torch.Tensor:
    return feature_attack(model, x, eps, y=y, **options)


def _feature_all(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
                 eps: float = DEFAULT_EPS, neuron: Any = "best", candidates: Any = "all",
                 batch_neurons: int = 16, **options: Any) -> torch.Tensor:
    return feature_attack(model, x, eps, y=y, neuron=neuron, candidates=candidates,
                          batch_neurons=batch_neurons, **options)


def _noise(model: nn.Module | None, x: torch.Tensor, y: torch.Tensor | None = None, *,
           eps: float = DEFAULT_EPS, generator: torch.Generator | None = None) -> torch.Tensor:
    return uniform_noise(x, eps, generator=generator)


def _mdti(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
          eps: float = DEFAULT_EPS, **options: Any) -> torch.Tensor:
    return mi_di_ti_fgsm(model, x, y, eps, **options)


def _layer(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
           eps: float = DEFAULT_EPS, **options: Any) -> torch.Tensor:
    return layer_attack(model, x, eps, **options)


def _fia(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
         eps: float = DEFAULT_EPS, **options: Any) -> torch.Tensor:
    return fia_attack(model, x, eps, y, **options)


def _ila(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
         eps: float = DEFAULT_EPS, **options: Any) -> torch.Tensor:
    return ila_attack(model, x, eps, y, **options)


ATTACKS: dict[str, Callable[..., torch.Tensor]] = {
    "fgsm": _fgsm,
    "pgd": _pgd,
    "feature": _feature,
    "noise": _noise,
}


@dataclass(frozen=True)
class AttackEntry:
    """One suite attack: ``entry(model, x, y=None, eps=..., **options)`` calls ``fn``.

    ``needs_labels``: ``y`` is required and must index the source's classes (so the attack only
    transfers meaningfully when source and target share labels). ``feature_level``: the objective
    lives on the source's features, not its logits. ``iterative``: accepts the MI/DI/TI options
    (``momentum``, ``diversity``, ``diversity_scale``, ``ti_kernel``). ``control``: a baseline,
    not an attack (noise of the same budget).
    """

    name: str
    fn: Callable[..., torch.Tensor]
    summary: str
    needs_labels: bool
    feature_level: bool
    iterative: bool = True
    control: bool = False

    @property
    def label_free(self) -> bool:
        return not self.needs_labels

    def __call__(self, model: nn.Module | None, x: torch.Tensor, y: torch.Tensor | None = None,
                 **options: Any) -> torch.Tensor:
        return self.fn(model, x, y, **options)


def _suite(*entries: AttackEntry) -> dict[str, AttackEntry]:
    names = [e.name for e in entries]
    assert len(set(names)) == len(names), names
    return {e.name: e for e in entries}


#: The transfer suite, one line per attack (control first, then label-needing, then label-free).
SUITE: dict[str, AttackEntry] = _suite(
    AttackEntry("noise", _noise, "uniform noise of the same budget (control)", needs_labels=False, feature_level=False, iterative=False, control=True),  # noqa: E501
    AttackEntry("fgsm", _fgsm, "one signed CE-gradient step of size eps", needs_labels=True, feature_level=False, iterative=False),  # noqa: E501
    AttackEntry("pgd", _pgd, "projected sign-gradient ascent of the CE (Madry et al.)", needs_labels=True, feature_level=False),  # noqa: E501
    AttackEntry("mi-di-ti-fgsm", _mdti, "iterative FGSM with momentum, input diversity and TI smoothing", needs_labels=True, feature_level=False),  # noqa: E501
    AttackEntry("feature", _feature_all, "push one penultimate neuron to m, best over all neurons", needs_labels=False, feature_level=True),  # noqa: E501
    AttackEntry("layer", _layer, "maximise the l2 distortion of one stage's features", needs_labels=False, feature_level=True),  # noqa: E501
    AttackEntry("fia", _fia, "feature-importance-aware attack (masked-gradient weights)", needs_labels=False, feature_level=True),  # noqa: E501
    AttackEntry("ila", _ila, "ILA projection onto a reference adversarial direction", needs_labels=False, feature_level=True),  # noqa: E501
)


@dataclass(frozen=True)
class AttackBudget:
    """How hard the transfer suite tries (one setting per effort level, shared by audit and
    experiments).

    ``steps``: iterations of every iterative entry (PGD, MI-DI-TI-FGSM, layer, FIA, ILA, and the
    audit's white-box PGD). ``feature_steps`` and ``candidates``: the penultimate-feature entry
    (``candidates`` neurons ranked by mean clean activation; per image the one whose adversarial
    features move farthest on the source is kept). ``fia_ensemble``: masked copies behind FIA's
    feature importance.
    """

    name: str
    steps: int
    feature_steps: int
    candidates: int
    summary: str
    fia_ensemble: int = 30

    def with_overrides(self, steps: int | None = None, feature_steps: int | None = None,
                       candidates: int | None = None) -> AttackBudget:
        """This budget with any explicitly given setting replacing its own."""
        return AttackBudget(self.name, steps if steps is not None else self.steps,
                            feature_steps if feature_steps is not None else self.feature_steps,
                            candidates if candidates is not None else self.candidates,
                            self.summary, self.fia_ensemble)


#: ``fast`` (the audit's default: 1,000 DTN-sized images at 3 ε in about 4 minutes on 2 CPU cores,
#: benchmarks/RESULTS.md) and ``thorough`` (the papers' 40 iterations, 32 candidate neurons).
BUDGETS: dict[str, AttackBudget] = {
    "fast": AttackBudget("fast", steps=10, feature_steps=10, candidates=4, fia_ensemble=10,
                         summary="10 iterations per attack, 4 candidate neurons, FIA over 10 "
                                 "masked copies"),
    "thorough": AttackBudget("thorough", steps=40, feature_steps=40, candidates=32,
                             fia_ensemble=30,
                             summary="40 iterations per attack, 32 candidate neurons, FIA over "
                                     "30 masked copies"),
}


def feature_mode(model: nn.Module) -> str:
    """``"pre"`` for models with uncapped pre-activation penultimate features (EfficientNet-Lite's
    ReLU6 caps the post-activation ones at 6), else ``"post"``."""
    return "pre" if callable(getattr(model, "forward_features_preact", None)) else "post"


def suite_options(entry: AttackEntry, budget: AttackBudget, source: nn.Module) -> dict[str, Any]:
    """The options a suite entry runs with under ``budget`` on ``source`` (besides ε, generator)."""
    if entry.name == "feature":
        return {"steps": budget.feature_steps, "candidates": budget.candidates,
                "features": feature_mode(source), "batch_neurons": 4}
    if entry.name == "fia":
        return {"steps": budget.steps, "ensemble": budget.fia_ensemble}
    return {"steps": budget.steps} if entry.iterative else {}


def transfer_suite(shared_labels: bool) -> list[AttackEntry]:
    """The suite entries an audit should run, in :data:`SUITE` order.

    With ``shared_labels=False`` (the target's classes differ from the source's) only label-free
    entries are kept: the noise control and the feature-level attacks. With ``True`` the
    label-needing ones (FGSM, PGD, MI-DI-TI-FGSM) join them.
    """
    return [e for e in SUITE.values() if shared_labels or not e.needs_labels]

"""The registry of named experiments (``transferguard reproduce --list``).

Names, summaries, papers and default seeds are plain data here; each experiment's plan, run and
report functions are :class:`Lazy` references, so listing the registry imports neither torch nor
pandas. A reference imports its module the first time it is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .._names import unknown_name
from ..errors import ConfigError
from .base import Experiment


class Lazy:
    """The function ``"package.module:function"``, imported on its first call.

    Extra positional arguments are appended to every call's: ``Lazy("m:f", "fig4")(s, n)`` is
    ``m.f(s, n, "fig4")``.
    """

    def __init__(self, target: str, *extra: Any) -> None:
        module, sep, attr = target.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"expected 'package.module:function', got {target!r}")
        self.target = target
        self.extra = extra
        self._fn: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """Import the module (once) and return the function."""
        if self._fn is None:
            module, _, attr = self.target.partition(":")
            self._fn = getattr(importlib.import_module(module), attr)
        return self._fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, *self.extra, **kwargs)

    def __repr__(self) -> str:
        extra = "".join(f", {e!r}" for e in self.extra)
        return f"Lazy({self.target!r}{extra})"


EXPERIMENTS: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    """Add ``exp`` to :data:`EXPERIMENTS` (replacing one of the same name) and return it."""
    EXPERIMENTS[exp.name] = exp
    return exp


def get_experiment(name: str) -> Experiment:
    """The registered experiment ``name``; a :class:`ConfigError` naming the known ones if absent."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(unknown_name("experiment", name, EXPERIMENTS)) from None


_PKG = "transferguard"
_SPECS = {"paper1": f"{_PKG}.experiments.paper1_specs", "paper2": f"{_PKG}.experiments.paper2_specs"}
_RUN = {"paper1": f"{_PKG}.experiments.paper1:run_transfer_grid",
        "paper2": f"{_PKG}.experiments.paper2:run_families"}
_REPORT = {"paper1": f"{_PKG}.reports.paper1:build_report",
           "paper2": f"{_PKG}.reports.paper2:build_report"}

# name, summary, plan function in the paper's specs module (+ extra arguments after (scale, seeds))
_TABLE: dict[str, list[tuple[str, str, tuple[Any, ...]]]] = {
    "paper1": [
        ("demo", "Paper 1 headline: (M, U, Syn) Scratch vs FT vs CommonInit, white-box + black-box "
         "FGSM, γ", ("demo_plan",)),
        ("fig3", "Paper 1 Fig. 3: clean accuracy and white-box FGSM, Scratch vs FT, every task",
         ("fig3_plan",)),
        ("fig4", "Paper 1 Fig. 4: black-box FGSM crafted on Model A, Scratch / FT / CommonInit",
         ("fig45_plan", "fig4")),
        ("fig5", "Paper 1 Fig. 5: transferability γ over ε (same grid as fig4, shared cache)",
         ("fig45_plan", "fig5")),
        ("fig6", "Paper 1 Fig. 6: effect of n_B (Domain-B labels) on accuracy and white-box "
         "robustness", ("fig6_plan",)),
        ("fig7", "Paper 1 Fig. 7: effect of n_A (Domain-A examples) on accuracy and white-box "
         "robustness", ("fig7_plan",)),
        ("fig8", "Paper 1 Fig. 8: choice of Domain A (similar vs dissimilar) for white-box, "
         "black-box, γ", ("fig8_plan",)),
        ("fig9", "Paper 1 Fig. 9: architecture (DTN vs WideResNet), white-box, black-box, γ",
         ("fig9_plan",)),
        ("fig10", "Paper 1 Fig. 10: input-gradient norm histograms, Scratch vs FT", ("fig10_plan",)),
    ],
    "paper2": [
        ("reno-table2", "Paper 2 Table 2: linear / fine-tune / L2-SP / DELTA / re-training: clean "
         "acc and ASR", ("table2_plan",)),
        ("reno-fig1", "Paper 2 Fig. 1: ASR vs weight and feature distance to the pre-trained model",
         ("table2_plan", "reno-fig1")),
        ("reno-table4", "Paper 2 Table 4: DELTA vs Renofeation vs re-training (per architecture)",
         ("table4_plan",)),
        ("reno-fig3", "Paper 2 Fig. 3: ablation of dropout and SWA on DELTA, DELTA-R and "
         "re-training", ("fig3_plan",)),
        ("reno-table5", "Paper 2 Table 5: DELTA / Renofeation / re-training with 33% and 66% of "
         "the data", ("table5_plan",)),
        ("reno-table6", "Paper 2 Table 6: DELTA with PGD-3 adversarial training vs Renofeation",
         ("table6_plan",)),
        ("reno-table7", "Paper 2 Table 7: dropout and SWA raise DELTA-R's feature-distillation loss",
         ("table7_plan",)),
        ("reno-fig4", "Paper 2 Fig. 4: sweeping DELTA's λ_feat never reaches Renofeation's "
         "robustness", ("fig4_plan",)),
        ("reno-adaptive", "Paper 2's open question: does Renofeation stay robust under the "
         "strongest transfer-suite attacks? (3 seeds)", ("adaptive_plan",)),
    ],
}

_OWN_REPORT = {"reno-adaptive": f"{_PKG}.reports.adaptive:build_report"}

for _paper, _rows in _TABLE.items():
    for _name, _summary, (_plan, *_extra) in _rows:
        register(Experiment(_name, _summary, _paper, Lazy(f"{_SPECS[_paper]}:{_plan}", *_extra),
                            Lazy(_RUN[_paper]), Lazy(_OWN_REPORT.get(_name, _REPORT[_paper]))))

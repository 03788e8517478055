"""The registry of named experiments (``transferguard reproduce --list``)."""

from __future__ import annotations

from ..errors import ConfigError
from ..reports import paper1 as paper1_report
from . import paper1, paper1_specs
from .base import Experiment

EXPERIMENTS: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    EXPERIMENTS[exp.name] = exp
    return exp


register(Experiment(
    "demo", "Paper 1 headline: (M, U, Syn) Scratch vs FT vs CommonInit, white-box + black-box FGSM, γ",
    "paper1", paper1_specs.demo_plan, paper1.run_transfer_grid, paper1_report.build_report))
register(Experiment(
    "fig3", "Paper 1 Fig. 3: clean accuracy and white-box FGSM, Scratch vs FT, every task",
    "paper1", paper1_specs.fig3_plan, paper1.run_transfer_grid, paper1_report.build_report))
register(Experiment(
    "fig4", "Paper 1 Fig. 4: black-box FGSM crafted on Model A, Scratch / FT / CommonInit",
    "paper1", lambda s, n: paper1_specs.fig45_plan(s, n, "fig4"), paper1.run_transfer_grid,
    paper1_report.build_report))
register(Experiment(
    "fig5", "Paper 1 Fig. 5: transferability γ over ε (same grid as fig4, shared cache)",
    "paper1", lambda s, n: paper1_specs.fig45_plan(s, n, "fig5"), paper1.run_transfer_grid,
    paper1_report.build_report))


def get_experiment(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}") from None

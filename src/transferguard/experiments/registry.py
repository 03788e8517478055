"""The registry of named experiments (``transferguard reproduce --list``)."""

from __future__ import annotations

from ..errors import ConfigError
from ..reports import paper1 as paper1_report
from ..reports import paper2 as paper2_report
from . import paper1, paper1_specs, paper2, paper2_specs
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


for _name, _summary, _plan in [
    ("fig6", "Paper 1 Fig. 6: effect of n_B (Domain-B labels) on accuracy and white-box robustness",
     paper1_specs.fig6_plan),
    ("fig7", "Paper 1 Fig. 7: effect of n_A (Domain-A examples) on accuracy and white-box robustness",
     paper1_specs.fig7_plan),
    ("fig8", "Paper 1 Fig. 8: choice of Domain A (similar vs dissimilar) for white-box, black-box, γ",
     paper1_specs.fig8_plan),
    ("fig9", "Paper 1 Fig. 9: architecture (DTN vs WideResNet), white-box, black-box, γ",
     paper1_specs.fig9_plan),
    ("fig10", "Paper 1 Fig. 10: input-gradient norm histograms, Scratch vs FT",
     paper1_specs.fig10_plan),
]:
    register(Experiment(_name, _summary, "paper1", _plan, paper1.run_transfer_grid,
                        paper1_report.build_report))

_RENO = [
    ("reno-table2", "Paper 2 Table 2: linear / fine-tune / L2-SP / DELTA / re-training: clean acc and ASR",
     paper2_specs.table2_plan),
    ("reno-fig1", "Paper 2 Fig. 1: ASR vs weight and feature distance to the pre-trained model",
     lambda s, n: paper2_specs.table2_plan(s, n, "reno-fig1")),
    ("reno-table4", "Paper 2 Table 4: DELTA vs Renofeation vs re-training (per architecture)",
     paper2_specs.table4_plan),
    ("reno-fig3", "Paper 2 Fig. 3: ablation of dropout and SWA on DELTA, DELTA-R and re-training",
     paper2_specs.fig3_plan),
    ("reno-table5", "Paper 2 Table 5: DELTA / Renofeation / re-training with 33% and 66% of the data",
     paper2_specs.table5_plan),
    ("reno-table6", "Paper 2 Table 6: DELTA with PGD-3 adversarial training vs Renofeation",
     paper2_specs.table6_plan),
    ("reno-table7", "Paper 2 Table 7: dropout and SWA raise DELTA-R's feature-distillation loss",
     paper2_specs.table7_plan),
    ("reno-fig4", "Paper 2 Fig. 4: sweeping DELTA's λ_feat never reaches Renofeation's robustness",
     paper2_specs.fig4_plan),
]
for _name, _summary, _plan in _RENO:
    register(Experiment(_name, _summary, "paper2", _plan, paper2.run_families, paper2_report.build_report))


def get_experiment(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}") from None

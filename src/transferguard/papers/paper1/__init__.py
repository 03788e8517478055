"""Paper 1 (KDD'20, AttackTransferLearning): Scratch / FT / CommonInit under white-box and
black-box FGSM, and γ.

``plan``: :class:`plan.Paper1Plan`, the typed plan (``to_json`` / ``from_json``); ``specs``: the
plans of every figure at both scales; ``run``: :func:`run.run_transfer_grid`, the rows of a plan;
``report``: the report built from those rows. Importing this package is light.
"""

from __future__ import annotations

from .. import Declared, Paper

PAPER = Paper("paper1", __name__, run="run:run_transfer_grid", report="report:build_report",
              plan_type="plan:Paper1Plan.from_json",
              experiments=(
    Declared("demo", "Paper 1 headline: (M, U, Syn) Scratch vs FT vs CommonInit, white-box + "
             "black-box FGSM, γ", "demo_plan"),
    Declared("fig3", "Paper 1 Fig. 3: clean accuracy and white-box FGSM, Scratch vs FT, every task",
             "fig3_plan"),
    Declared("fig4", "Paper 1 Fig. 4: black-box FGSM crafted on Model A, Scratch / FT / CommonInit",
             "fig45_plan", ("fig4",)),
    Declared("fig5", "Paper 1 Fig. 5: transferability γ over ε (same grid as fig4, shared cache)",
             "fig45_plan", ("fig5",)),
    Declared("fig6", "Paper 1 Fig. 6: effect of n_B (Domain-B labels) on accuracy and white-box "
             "robustness", "fig6_plan"),
    Declared("fig7", "Paper 1 Fig. 7: effect of n_A (Domain-A examples) on accuracy and white-box "
             "robustness", "fig7_plan"),
    Declared("fig8", "Paper 1 Fig. 8: choice of Domain A (similar vs dissimilar) for white-box, "
             "black-box, γ", "fig8_plan"),
    Declared("fig9", "Paper 1 Fig. 9: architecture (DTN vs WideResNet), white-box, black-box, γ",
             "fig9_plan"),
    Declared("fig10", "Paper 1 Fig. 10: input-gradient norm histograms, Scratch vs FT",
             "fig10_plan"),
))

"""Paper 2 (Renofeation): transfer methods vs the penultimate-feature attack of the public source.

``plan``: :class:`plan.Paper2Plan`, the typed plan (``to_json`` / ``from_json``); ``specs``: the
plans of every table and figure at both scales; ``run``: :func:`run.run_families`, the rows of a
plan; ``report``: the report built from those rows; ``adaptive``: the report of ``reno-adaptive``
(worst case over the transfer suite). Importing this package is light.
"""

from __future__ import annotations

from .. import Declared, Paper

PAPER = Paper("paper2", __name__, run="run:run_families", report="report:build_report",
              plan_type="plan:Paper2Plan.from_json",
              experiments=(
    Declared("reno-table2", "Paper 2 Table 2: linear / fine-tune / L2-SP / DELTA / re-training: "
             "clean acc and ASR", "table2_plan"),
    Declared("reno-fig1", "Paper 2 Fig. 1: ASR vs weight and feature distance to the pre-trained "
             "model", "table2_plan", ("reno-fig1",)),
    Declared("reno-table4", "Paper 2 Table 4: DELTA vs Renofeation vs re-training (per "
             "architecture)", "table4_plan"),
    Declared("reno-fig3", "Paper 2 Fig. 3: ablation of dropout and SWA on DELTA, DELTA-R and "
             "re-training", "fig3_plan"),
    Declared("reno-table5", "Paper 2 Table 5: DELTA / Renofeation / re-training with 33% and 66% "
             "of the data", "table5_plan"),
    Declared("reno-table6", "Paper 2 Table 6: DELTA with PGD-3 adversarial training vs "
             "Renofeation", "table6_plan"),
    Declared("reno-table7", "Paper 2 Table 7: dropout and SWA raise DELTA-R's feature-distillation "
             "loss", "table7_plan"),
    Declared("reno-fig4", "Paper 2 Fig. 4: sweeping DELTA's λ_feat never reaches Renofeation's "
             "robustness", "fig4_plan"),
    Declared("reno-adaptive", "Paper 2's open question: does Renofeation stay robust under the "
             "strongest transfer-suite attacks? (3 seeds)", "adaptive_plan",
             report="adaptive:build_report"),
))

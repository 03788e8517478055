"""reno-adaptive: the transfer suite inside a paper-2 grid, its counts, its report and findings.

A tiny DTN grid (two seeds, four methods, a few test images): structure and internal consistency
only — which method resists which attack on models trained for six steps is not asserted.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from transferguard.attacks import BUDGETS, transfer_suite
from transferguard.experiments import EXPERIMENTS, Runner, Store
from transferguard.experiments.reproduce import results_frame, write_findings
from transferguard.experiments.spec import DataSpec, TrainSpec
from transferguard.papers.paper2 import adaptive
from transferguard.papers.paper2 import run as paper2
from transferguard.papers.paper2.plan import Paper2Plan
from transferguard.reports.common import FINDING_COLUMNS

TINY = TrainSpec(epochs=None, iterations=6, batch_size=32, eval_every=3)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adaptive")
    src = paper2.trained_source(DataSpec("mnist5k", n_train_per_class=10, n_test_per_class=2),
                                "dtn", TINY)
    swa = TrainSpec(**{**TINY.__dict__, "swa": {"iterations": 4, "average_every": 2}})
    rows = [paper2.method_row("fine-tune", "ft", TINY), paper2.method_row("delta", "delta", TINY),
            paper2.method_row("re-training", "scratch", TINY),
            paper2.method_row("renofeation", "renofeation", swa)]
    fam = paper2.make_plan("tiny-adaptive", "offline", 2, source=src, arch="dtn",
                           targets=[DataSpec("ucidigits", n_train_per_class=8, n_test_per_class=3)],
                           methods=rows, attack={"eps": 8 / 255, "steps": 2, "step_size": 0.01,
                                                 "m": 1000.0, "neuron": 0, "restarts": 1},
                           suite="fast")
    plan = Paper2Plan("tiny-adaptive", "offline", (replace(fam, family="syn"),), "")
    runner = Runner(Store(tmp / "store"), device="cpu", progress=False)
    df = results_frame(paper2.run_families(runner, plan))
    return df, plan, runner, tmp


def test_suite_rows_carry_consistent_counts(grid):
    df, plan, runner, _ = grid
    suite = [e for e in transfer_suite(shared_labels=True) if not e.control]
    assert {e.name for e in suite} >= {"fgsm", "pgd", "feature", "layer", "fia", "ila"}
    counted = ["feature", "noise", *[f"{e.name}-transfer" for e in suite]]
    for attack in counted:
        sub = df[df.attack == attack]
        wide = sub.pivot_table(index=["seed", "method"], columns="metric", values="value")
        assert len(wide) == 2 * 4, attack  # every seed × method
        assert (wide.n_fooled <= wide.n_correct).all()
        ok = wide.n_correct > 0
        assert (wide.asr[ok] - wide.n_fooled[ok] / wide.n_correct[ok]).abs().max() < 1e-12
    # one batch per suite attack and seed (the source is trained per seed), shared by targets;
    # plus the paper's feature attack and the noise control, also per seed
    assert runner.counters["crafted"] == 2 * (len(suite) + 2)
    # the syndigits-style source shares the digit labels: the label-based attacks ran
    assert "pgd-transfer" in set(df.attack) and "mi-di-ti-fgsm-transfer" in set(df.attack)
    assert (df[df.metric == "n_classes"].value == 10).all()


def test_report_tests_each_claim_and_writes_findings_csv(grid):
    df, plan, _, tmp = grid
    report = adaptive.build_report(df, tmp, plan)
    assert "worst case" in report.markdown and (tmp / "syn_suite_asr.png").exists()
    assert len(report.findings) == len(adaptive.CLAIMS)
    for f in report.findings:
        assert f.verdict in ("held", "did not hold", "inconclusive", "not checkable")
        if f.verdict != "not checkable":
            assert f.seeds == 2 and f.n_images > 0 and f.ci_low <= f.effect <= f.ci_high
    path = write_findings("tiny-adaptive", report.findings, tmp)
    table = pd.read_csv(path)
    assert list(table.columns) == FINDING_COLUMNS and len(table) == len(report.findings)


def test_worst_case_is_the_strongest_attack_and_near_chance_models_are_not_checkable():
    rows = []
    for seed in (0, 1):
        for method, acc, fooled in (("renofeation", 0.9, {"feature": 2, "layer-transfer": 9}),
                                    ("fine-tune", 0.9, {"feature": 30, "layer-transfer": 20}),
                                    ("re-training", 0.12, {"feature": 0, "layer-transfer": 0})):
            base = {"seed": seed, "task": "t", "method": method, "eps": 8 / 255,
                    "n_classes": 10}
            rows.append({**base, "attack": "none", "eps": 0.0, "metric": "clean_acc",
                         "value": acc})
            for attack, k in {**fooled, "noise": 1}.items():
                rows += [{**base, "attack": attack, "metric": "n_fooled", "value": k},
                         {**base, "attack": attack, "metric": "n_correct", "value": 50}]
    df = pd.DataFrame(rows)
    assert adaptive.worst_attack(df, "renofeation") == "layer-transfer"
    assert adaptive.worst_attack(df, "fine-tune") == "feature"
    found = adaptive.check_claims(df, "x")
    ft = next(f for f in found if "fine-tuning" in f.claim)
    assert ft.verdict == "held" and ft.effect == pytest.approx(9 / 50 - 30 / 50)
    retrain = next(f for f in found if "re-training" in f.claim)
    assert retrain.verdict == "not checkable" and "chance" in retrain.evidence


def test_unfinished_models_and_sources_are_not_checkable():
    """Like every other claim: a model still improving when its budget ended, or resting on a
    source that was, cannot carry a verdict (seen on the first H200 run, whose claims all held
    while the syn source was still improving in two seeds)."""
    rows = []
    for seed in (0, 1):
        for method, plateaued, upstream in (("renofeation", True, ""),
                                            ("fine-tune", seed == 0, ""),
                                            ("delta", True, "source s" if seed == 1 else "")):
            base = {"seed": seed, "task": "t", "method": method, "eps": 8 / 255,
                    "plateaued": plateaued, "upstream_unfinished": upstream}
            rows.append({**base, "attack": "none", "eps": 0.0, "metric": "clean_acc", "value": 0.9})
            for attack, k in (("feature", 2 if method == "renofeation" else 30), ("noise", 1)):
                rows += [{**base, "attack": attack, "metric": "n_fooled", "value": k},
                         {**base, "attack": attack, "metric": "n_correct", "value": 50}]
    found = {f.claim: f for f in adaptive.check_claims(pd.DataFrame(rows), "x")}
    ft = next(f for c, f in found.items() if "fine-tuning" in c)
    assert ft.verdict == "not checkable" and "fine-tune was still improving" in ft.evidence
    assert "(seed 1)" in ft.evidence
    delta = next(f for c, f in found.items() if "DELTA" in c)
    assert delta.verdict == "not checkable" and "source s, which delta rests on" in delta.evidence
    noise = next(f for c, f in found.items() if "noise control" in c)
    assert noise.verdict == "held"  # Renofeation itself and its lineage finished


def test_reno_adaptive_is_registered_with_three_seeds_and_the_fast_budget():
    exp = EXPERIMENTS["reno-adaptive"]
    assert exp.default_seeds["offline"] >= 3
    plan = exp.plan("offline", 3)
    fams = {f.family: f for f in plan.families}
    assert set(fams) == {"imagenet", "syn"}
    for fam in fams.values():
        assert fam.suite["budget"] == "fast" and fam.suite["steps"] == BUDGETS["fast"].steps
        assert [m.label for m in fam.methods] == adaptive_methods()
    assert EXPERIMENTS["reno-adaptive"].plan("paper", 2).families[0].suite["budget"] == \
        "thorough"


def adaptive_methods() -> list[str]:
    from transferguard.papers.paper2.specs import ADAPTIVE

    return ADAPTIVE

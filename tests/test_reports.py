"""Reports are built from a results table alone: a hand-written table gives known findings."""

from __future__ import annotations

import pandas as pd

from transferguard.experiments import EXPERIMENTS
from transferguard.reports import paper1 as r1
from transferguard.reports import paper2 as r2
from transferguard.reports.common import fmt_eps, markdown_to_html, mean_std


def _p1_rows(ft_black: float) -> list[dict]:
    rows = []
    eps = [4 / 255, 16 / 255]
    for seed in (0, 1):
        for method, clean, white, black, _ in (
            ("scratch", 0.80, [0.5, 0.2], [0.7, 0.6], None),
            ("ft", 0.90, [0.6, 0.4], [0.5, ft_black], None),
        ):
            base = {"experiment": "t", "task": "M→U", "method": method, "arch": "dtn", "seed": seed}
            rows.append({**base, "attack": "none", "eps": 0.0, "metric": "clean_acc", "value": clean})
            for e, w, b in zip(eps, white, black, strict=True):
                rows.append({**base, "attack": "fgsm-white", "eps": e, "metric": "adv_acc", "value": w})
                rows.append({**base, "attack": "fgsm-black", "eps": e, "metric": "adv_acc", "value": b})
                rows.append({**base, "attack": "fgsm-black", "eps": e, "metric": "gamma",
                             "value": (b - w) / w})
    return rows


def held(findings, prefix: str):
    """The verdict of the one finding whose claim (after the [task] tag) starts with ``prefix``."""
    hits = [f.held for f in findings if f.claim.split("] ", 1)[1].startswith(prefix)]
    assert len(hits) == 1, (prefix, [f.claim for f in findings])
    return hits[0]


def test_paper1_findings_from_fixed_table() -> None:
    found = r1.check_findings(pd.DataFrame(_p1_rows(ft_black=0.1)))
    assert held(found, "FT has higher clean accuracy") is True
    assert held(found, "FT is more robust than Scratch") is True
    assert held(found, "FT is more vulnerable than Scratch") is True   # 0.1 < 0.6
    assert held(found, "γ of FT is below") is True
    assert held(found, "γ of FT drops below 0") is True                # (0.1-0.4)/0.4 < 0
    found2 = r1.check_findings(pd.DataFrame(_p1_rows(ft_black=0.9)))
    assert held(found2, "FT is more vulnerable than Scratch") is False
    assert held(found2, "γ of FT drops below 0") is False


def test_paper1_report_writes_tables_and_figures(tmp_path) -> None:
    df = pd.DataFrame(_p1_rows(ft_black=0.1))
    plan = {"experiment": "t", "scale": "offline", "seeds": [0, 1], "notes": ""}
    md = r1.build_report(df, tmp_path, plan).markdown
    assert "| Scratch | 20.0 | " in md.replace("20.0 ± 0.0", "20.0") or "| Scratch |" in md
    assert "4 of" in md or "held on this run" in md
    for png in ("clean_accuracy.png", "fgsm-white_m-u.png", "fgsm-black_m-u.png", "gamma_m-u.png"):
        assert (tmp_path / png).stat().st_size > 1000, png
    html = markdown_to_html(md, tmp_path, "t")
    assert html.count("data:image/png;base64,") == 4


def test_paper2_findings_from_fixed_table(tmp_path) -> None:
    rows = []
    vals = {"fine-tune": (0.9, 0.8, 0.1), "re-training": (0.7, 0.1, 0.08), "delta": (0.92, 0.85, 0.1),
            "renofeation": (0.9, 0.12, 0.1), "linear": (0.8, 0.95, 0.1)}
    for m, (clean, asr, noise) in vals.items():
        base = {"experiment": "t", "task": "fashion", "method": m, "arch": "dtn", "seed": 0,
                "family": "syn"}
        rows += [{**base, "attack": "none", "eps": 0.0, "metric": "clean_acc", "value": clean},
                 {**base, "attack": "feature", "eps": 8 / 255, "metric": "asr", "value": asr},
                 {**base, "attack": "noise", "eps": 8 / 255, "metric": "asr", "value": noise},
                 {**base, "attack": "none", "eps": 0.0, "metric": "weight_distance", "value": 1 - asr}]
    df = pd.DataFrame(rows)
    found = r2.check_findings(df, "syn", list(vals))
    assert held(found, "the attack crafted on the pre-trained model") is True
    assert held(found, "the linear probe is the most vulnerable") is True
    assert held(found, "Renofeation is far more robust") is True
    assert held(found, "Renofeation's clean accuracy") is True
    assert held(found, "DELTA has the best clean") is True
    assert held(found, "re-training has lower clean") is True
    assert held(found, "ASR falls as the weight distance") is True  # distance = 1 − ASR: ρ = −1

    # The same table with an attack that fools (almost) nothing: ASR comparisons are not evidence,
    # so they are "not checked"; claims about clean accuracy are still checked.
    weak = df.copy()
    feature = (weak.attack == "feature") & (weak.metric == "asr")
    weak.loc[feature, "value"] = weak.loc[feature, "value"] * 0.03  # at most 2.9 %
    found = r2.check_findings(weak, "syn", list(vals))
    for claim in ("the attack crafted on the pre-trained model", "the linear probe is the most",
                  "Renofeation is far more robust", "ASR falls as the weight distance"):
        assert held(found, claim) is None, claim
    assert "not testable" in next(f.evidence for f in found if "linear probe" in f.claim)
    assert held(found, "Renofeation's clean accuracy") is True
    assert held(found, "re-training has lower clean") is True


def test_paper2_eps_sweep_is_reported_apart_from_the_claims(tmp_path) -> None:
    """Sweep rows never enter the headline findings; the report re-checks ASR claims per swept ε."""
    vals = {"linear": (0.9, 0.02, 0.6), "fine-tune": (0.95, 0.015, 0.5),
            "re-training": (0.9, 0.01, 0.05)}  # clean, ASR at 8/255 (weak), ASR at 64/255
    rows = []
    for m, (clean, weak, strong) in vals.items():
        base = {"experiment": "t", "task": "mnist5k", "method": m, "arch": "dtn", "seed": 0,
                "family": "syn"}
        rows.append({**base, "attack": "none", "eps": 0.0, "metric": "clean_acc", "value": clean})
        for eps, asr in ((8 / 255, weak), (64 / 255, strong)):
            rows += [{**base, "attack": "feature", "eps": eps, "metric": "asr", "value": asr},
                     {**base, "attack": "noise", "eps": eps, "metric": "asr", "value": 0.01}]
    df = pd.DataFrame(rows)
    fam = {"family": "syn", "methods": [{"label": m} for m in vals], "seeds": [0],
           "attack": {"eps": 8 / 255, "steps": 40, "step_size": 0.01, "m": 1000.0, "neuron": 0},
           "source": {"kind": "trained", "arch": "dtn", "data": {"domain": "syndigits"}}}
    plan = {"experiment": "t", "scale": "offline", "families": [fam], "notes": ""}
    report = r2.build_report(df, tmp_path, plan)
    # At the plan's 8/255 the attack fools ≤ 2 %: the ASR claims are not checked ...
    assert held(report.findings, "the attack crafted on the pre-trained model") is None
    assert held(report.findings, "the linear probe is the most vulnerable") is None
    assert held(report.findings, "re-training has lower clean") is True  # clean: 0.9 < 0.95
    # ... while the sensitivity section shows them at 64/255, not counted in the claims.
    md = report.markdown
    section = md[md.index("### Sensitivity: ASR over ε"):md.index("## Which of the paper's")]
    assert "| linear | 2.0% (1.0%) | 60.0% (1.0%) |" in section
    assert "At ε = 64/255 the attack claims would read" in section
    assert section.count("**held**") == 2  # fine-tune ≫ re-training; linear most vulnerable
    assert report.claims()["total"] == len(report.findings) == 3
    assert (tmp_path / "syn_asr_over_eps.png").stat().st_size > 1000


def test_formatting_helpers() -> None:
    assert fmt_eps(8 / 255) == "8/255"
    assert fmt_eps(0.0) == "0"
    assert mean_std(pd.Series([0.5])) == "50.0"
    assert mean_std(pd.Series([0.5, 0.7])) == "60.0 ± 14.1"


def test_every_experiment_listed_with_summary() -> None:
    assert {"demo", "fig3", "fig4", "fig5", "reno-table2", "reno-table4", "reno-fig1",
            "reno-fig3"} <= set(EXPERIMENTS)
    assert all(e.summary for e in EXPERIMENTS.values())

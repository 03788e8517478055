"""Reports are built from a results table alone: a hand-written table gives known findings."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from transferguard.auditing import report as audit_report
from transferguard.experiments import EXPERIMENTS
from transferguard.papers.paper1 import report as r1
from transferguard.papers.paper1.plan import Paper1Plan
from transferguard.papers.paper2 import report as r2
from transferguard.papers.paper2.plan import Family, MethodRow, Paper2Plan, Source
from transferguard.reports import common
from transferguard.reports.common import fmt_eps, markdown_to_html, mean_ci


def _p1_plan() -> Paper1Plan:
    """A paper-1 plan with what a report reads: name, scale, two seeds."""
    return Paper1Plan(experiment="t", scale="offline", seeds=(0, 1), tasks=(), strategies=(),
                      train={}, eps=(), eps_255=())


def _p2_plan(family: str, methods: list[str], attack: dict, source_domain: str) -> Paper2Plan:
    """A paper-2 plan with what a report reads: one family, its method labels, attack, source."""
    fam = Family(experiment="t", scale="offline", seeds=(0,),
                 source=Source("trained", "dtn", data={"domain": source_domain}), arch="dtn",
                 archs=("dtn",), targets=(), methods=tuple(MethodRow(m, m, {}, {}) for m in methods),
                 attack=attack, family=family)
    return Paper2Plan("t", "offline", (fam,), "")


def _p1_rows(ft_black: float) -> list[dict]:
    rows = []
    eps = [4 / 255, 16 / 255]
    for seed in (0, 1):
        for method, clean, white, black, _ in (
            ("scratch", 0.80, [0.5, 0.2], [0.7, 0.6], None),
            ("ft", 0.90, [0.6, 0.4], [0.5, ft_black], None),
        ):
            base = {"experiment": "t", "task": "M→U", "method": method, "arch": "dtn", "seed": seed,
                    "n_images": 1000, "n_classes": 10}
            rows.append({**base, "attack": "none", "eps": 0.0, "metric": "clean_acc", "value": clean})
            for e, w, b in zip(eps, white, black, strict=True):
                rows.append({**base, "attack": "fgsm-white", "eps": e, "metric": "adv_acc", "value": w})
                rows.append({**base, "attack": "fgsm-transfer", "eps": e, "metric": "adv_acc", "value": b})
                rows.append({**base, "attack": "fgsm-transfer", "eps": e, "metric": "gamma",
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
    plan = _p1_plan()
    md = r1.build_report(df, tmp_path, plan).markdown
    assert "| Scratch | 20.0 | " in md.replace("20.0 ± 0.0", "20.0") or "| Scratch |" in md
    assert "4 of" in md or "held on this run" in md
    for png in ("clean_accuracy.png", "fgsm-white_m-u.png", "fgsm-transfer_m-u.png", "gamma_m-u.png"):
        assert (tmp_path / png).stat().st_size > 1000, png
    html = markdown_to_html(md, tmp_path, "t")
    assert html.count("data:image/png;base64,") == 4


def test_paper2_findings_from_fixed_table(tmp_path) -> None:
    rows = []
    vals = {"fine-tune": (0.9, 0.8, 0.1), "re-training": (0.7, 0.1, 0.08), "delta": (0.92, 0.85, 0.1),
            "renofeation": (0.9, 0.12, 0.1), "linear": (0.8, 0.95, 0.1)}
    for m, (clean, asr, noise) in vals.items():
        base = {"experiment": "t", "task": "fashion", "method": m, "arch": "dtn", "seed": 0,
                "family": "syn", "n_images": 20_000, "n_classes": 10}
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
                "family": "syn", "n_images": 20_000, "n_classes": 10}
        rows.append({**base, "attack": "none", "eps": 0.0, "metric": "clean_acc", "value": clean})
        for eps, asr in ((8 / 255, weak), (64 / 255, strong)):
            rows += [{**base, "attack": "feature", "eps": eps, "metric": "asr", "value": asr},
                     {**base, "attack": "noise", "eps": eps, "metric": "asr", "value": 0.01}]
    df = pd.DataFrame(rows)
    plan = _p2_plan("syn", list(vals), {"eps": 8 / 255, "steps": 40, "step_size": 0.01,
                                        "m": 1000.0, "neuron": 0}, "syndigits")
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
    assert common.UNCERTAINTY_NOTE in md  # what a table's ± means, as in paper 1's reports


def test_formatting_helpers() -> None:
    assert fmt_eps(8 / 255) == "8/255"
    assert fmt_eps(0.0) == "0"
    assert common.fmt_eps255(8 / 255) == "8" and common.fmt_eps255(2.5 / 255) == "2.5"
    assert mean_ci(pd.Series([0.5])) == "50.0"
    # two seeds: 60 ± t(0.975, 1) · 14.14 / √2 = 60 ± 127.1 (two seeds say little)
    assert mean_ci(pd.Series([0.5, 0.7])) == "60.0 ± 127.1"
    assert mean_ci(pd.Series([0.5, 0.6, 0.7])) == "60.0 ± 24.8"
    # a seed without a value (γ with a white-box accuracy of 0) is left out, and said so
    assert mean_ci(pd.Series([0.5, 0.7, float("nan")])) == "60.0 ± 127.1 (2 of 3 seeds)"
    assert mean_ci(pd.Series([409.0, float("nan")]), pct=False) == "409.000 (1 of 2 seeds)"


def test_every_experiment_listed_with_summary() -> None:
    assert {"demo", "fig3", "fig4", "fig5", "reno-table2", "reno-table4", "reno-fig1",
            "reno-fig3"} <= set(EXPERIMENTS)
    assert all(e.summary for e in EXPERIMENTS.values())


# ---------------------------------------------------------------------------------------------
# Figures a reader can read: structural checks on the matplotlib objects (no pixels compared).

@pytest.fixture
def figures(monkeypatch):
    """Every figure the report code would save, by file name, left open for inspection."""
    made: dict[str, plt.Figure] = {}

    def keep(fig, path):
        made[Path(path).name] = fig
        return path

    for module in (common, r1, r2, audit_report):
        if hasattr(module, "save_figure"):
            monkeypatch.setattr(module, "save_figure", keep)
    yield made
    for fig in made.values():
        plt.close(fig)


def _legend_clear_of_data(fig: plt.Figure) -> bool:
    """No legend, or one whose box lies wholly outside every axes' box."""
    fig.canvas.draw()
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None and leg.get_window_extent().overlaps(ax.get_window_extent()):
            return False
    return True


def _bars(ax) -> list:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def _audit_rows(eps_list, refs=()) -> pd.DataFrame:
    rows = []
    for method in ("target", *refs):
        for e in eps_list:
            for k, attack in enumerate(audit_report.ORDER):
                if method != "target" and attack not in audit_report.SOURCE_ATTACKS:
                    continue
                # Several attacks share a value: on a line plot their markers would coincide.
                rows.append({"method": method, "attack": attack, "eps": e, "metric": "asr",
                             "value": 0.5 if k < 4 else 0.1 * k})
    return pd.DataFrame(rows)


def test_choose_yscale_follows_the_span_of_the_values() -> None:
    assert common.choose_yscale([0.003, 0.1, 60.0]) == ("log", {})
    kind, kw = common.choose_yscale([-0.75, -0.17, 0.0, 0.4, 2.0])
    assert kind == "symlog" and 0 < kw["linthresh"] <= 0.17
    assert common.choose_yscale([0.2, 0.5, 1.9])[0] == "linear"
    assert common.choose_yscale([-0.5, 0.0, 0.4])[0] == "linear"
    assert common.choose_yscale([0.0, 0.0, float("nan")])[0] == "linear"


def test_paper1_figures_are_readable(tmp_path, figures) -> None:
    df = pd.DataFrame(_p1_rows(ft_black=0.1))
    r1.build_report(df, tmp_path, _p1_plan())
    assert set(figures) == {"clean_accuracy.png", "fgsm-white_m-u.png", "fgsm-transfer_m-u.png",
                            "gamma_m-u.png"}
    for name, fig in figures.items():
        assert _legend_clear_of_data(fig), name
        ax = fig.axes[0]
        labels = sorted(t.get_text() for t in ax.get_legend().get_texts())
        assert labels == ["FT", "Scratch"], name
    # γ spans −0.75 … 2 (a factor 12 in magnitude, both signs): a symmetric log axis.
    gamma = figures["gamma_m-u.png"].axes[0]
    assert gamma.get_yscale() == "symlog"
    assert "/255" in gamma.get_xlabel()
    for name in ("fgsm-white_m-u.png", "fgsm-transfer_m-u.png"):
        ax = figures[name].axes[0]
        assert ax.get_yscale() == "linear" and "%" in ax.get_ylabel() and "/255" in ax.get_xlabel()
        assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "16"]
    clean = figures["clean_accuracy.png"].axes[0]
    assert len(_bars(clean)) == 2 and "%" in clean.get_ylabel()
    # Every bar carries its value.
    assert sorted(t.get_text() for t in clean.texts) == ["80.0", "90.0"]


def test_gamma_over_decades_uses_a_log_axis() -> None:
    rows = [{"method": m, "eps": e / 255, "seed": 0, "value": v * e}
            for m, v in (("a", 0.003), ("b", 0.01)) for e in (1, 8, 32)]
    fig = common.line_figure(pd.DataFrame(rows), x="eps", hue="method", title="γ", ylabel="γ",
                             pct=False, hline=0.0, yscale="auto")
    try:
        ax = fig.axes[0]
        assert ax.get_yscale() == "log"
        assert len([ln for ln in ax.get_lines() if ln.get_label() in ("a", "b")]) == 2
        assert _legend_clear_of_data(fig)
    finally:
        plt.close(fig)


def test_single_eps_audit_figure_uses_bars_for_every_series() -> None:
    fig = audit_report.target_figure(_audit_rows([8 / 255]))
    try:
        ax = fig.axes[0]
        bars = _bars(ax)
        assert len(bars) == len(audit_report.ORDER)
        # One bar per series, side by side: none hides another.
        assert len({round(b.get_x(), 6) for b in bars}) == len(bars)
        assert not [ln for ln in ax.get_lines() if ln.get_label() in audit_report.LABELS.values()]
        assert "%" in ax.get_ylabel() and "8/255" in ax.get_xticklabels()[0].get_text()
        assert len(ax.get_legend().get_texts()) == len(audit_report.ORDER)
        assert _legend_clear_of_data(fig)
    finally:
        plt.close(fig)


def test_multi_eps_audit_figures_draw_every_series() -> None:
    eps = [2 / 255, 4 / 255, 8 / 255]
    df = _audit_rows(eps, refs=("reference:retrain",))
    target = audit_report.target_figure(df)
    models = audit_report.models_figure(df)
    try:
        ax = target.axes[0]
        assert len([ln for ln in ax.get_lines() if ln.get_label() in audit_report.LABELS.values()]) \
            == len(audit_report.ORDER)
        # Coinciding series stay visible: distinct marker shapes, later ones smaller.
        lines = ax.get_lines()[:4]
        assert len({ln.get_marker() for ln in lines}) == 4
        assert [ln.get_markersize() for ln in lines] == sorted(
            (ln.get_markersize() for ln in lines), reverse=True)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4", "8"]
        m = models.axes[0]
        assert len([ln for ln in m.get_lines() if " · " in ln.get_label()]) == 2 * 4
        for fig in (target, models):
            assert _legend_clear_of_data(fig)
    finally:
        plt.close(target)
        plt.close(models)


def test_single_eps_reference_figure_groups_bars_by_attack() -> None:
    fig = audit_report.models_figure(_audit_rows([8 / 255], refs=("reference:retrain",)))
    try:
        ax = fig.axes[0]
        assert len(_bars(ax)) == 2 * 4
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["retrain", "target"]
        assert _legend_clear_of_data(fig)
    finally:
        plt.close(fig)


def test_zero_height_bars_still_show(figures) -> None:
    df = pd.DataFrame([{"task": "t", "method": m, "seed": 0, "value": v}
                       for m, v in (("a", 0.3), ("b", 0.0), ("c", 0.0))])
    fig = common.bar_figure(df, group="task", hue="method", title="x", ylabel="ASR (%)")
    try:
        ax = fig.axes[0]
        assert sorted(t.get_text() for t in ax.texts) == ["0.0", "0.0", "30.0"]
        marks = [c for c in ax.collections if c.get_linewidth()[0] >= 2]
        assert len(marks) == 2  # a baseline mark in each empty bar's colour
    finally:
        plt.close(fig)


def test_paper2_figures_are_readable(tmp_path, figures) -> None:
    rows = []
    for m, (clean, asr, dist) in {"linear": (0.8, 0.3, 0.0), "fine-tune": (0.9, 0.1, 2.0),
                                  "l2sp": (0.9, 0.1, 2.0)}.items():
        for task in ("mnist5k", "ucidigits"):
            base = {"experiment": "t", "task": task, "method": m, "arch": "dtn", "seed": 0,
                    "family": "syn"}
            rows += [{**base, "attack": "none", "eps": 0.0, "metric": "clean_acc", "value": clean},
                     {**base, "attack": "feature", "eps": 8 / 255, "metric": "asr", "value": asr},
                     {**base, "attack": "none", "eps": 0.0, "metric": "weight_distance",
                      "value": dist}]
    r2.build_report(pd.DataFrame(rows), tmp_path,
                    _p2_plan("syn", ["linear", "fine-tune", "l2sp"],
                             {"eps": 8 / 255, "steps": 40, "step_size": 0.01, "m": 1000.0,
                              "neuron": 0}, "syndigits"))
    assert {"syn_clean_acc.png", "syn_asr.png", "syn_asr_vs_weight_distance.png"} <= set(figures)
    for name, fig in figures.items():
        assert _legend_clear_of_data(fig), name
        assert "%" in fig.axes[0].get_ylabel(), name
    scatter = figures["syn_asr_vs_weight_distance.png"].axes[0]
    # fine-tune and l2sp coincide: different marker shapes and sizes keep both in sight.
    sizes = [c.get_sizes()[0] for c in scatter.collections]
    assert len(scatter.collections) == 3 and len(set(sizes)) == 3


def test_html_links_open_the_html_reports(tmp_path) -> None:
    html = markdown_to_html("| experiment |\n|---|\n| [demo](demo/report.md) |", tmp_path, "t")
    assert '<a href="demo/report.html">demo</a>' in html

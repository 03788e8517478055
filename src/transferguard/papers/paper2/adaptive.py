"""Report of ``reno-adaptive``: does Renofeation's robustness survive the transfer suite?

Paper 2 shows Renofeation resists *its* attack (the penultimate-feature attack, neuron 0). Its
open question is whether that robustness holds against stronger attacks crafted on the same
public model. This report answers it from the results table alone, per source family:

* each method's attack success rate (ASR) under every attack crafted on the source, pooled over
  target domains and seeds, with a 95 % hierarchical-bootstrap interval (:mod:`transferguard.stats`);
* each method's **worst case**: the attack with the highest pooled ASR against it (a winner's pick,
  which favours the attacker slightly);
* four claims, each a test fixed before the run on the worst-case ASRs (see :data:`CLAIMS`).

A claim that rests on a model whose clean accuracy is within :data:`NEAR_CHANCE` of chance is
``not checkable``: an untrained network's 0 % ASR is not robustness. So is one resting on a model
that was still improving when its budget ended, or whose source was
(:meth:`~transferguard.reports.claims.ClaimTester.weak_models`, as for every other claim).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...reports.claims import ClaimTester
from ...reports.common import (
    Finding,
    Report,
    apply_scale,
    choose_yscale,
    ci_half_width,
    findings_markdown,
    fmt_eps,
    legend_outside,
    md_table,
    save_figure,
    series_style,
    slug,
)
from ...results import CLEAN, NOISE, PAPER2_FEATURE, Metric, Threat, parse_attack_name, threat_of
from ...stats import Counts, Effect, bootstrap_effect, decide
from .plan import Paper2Plan
from .report import source_text

#: "Comparable" means a worst-case ASR within this many points of re-training's.
EQUIVALENCE_MARGIN = 0.05
#: The audit's LOW band: the worst-case ASR exceeds noise by less than this.
LOW_GAP = 0.15
PAPER_ATTACK = PAPER2_FEATURE


@dataclass(frozen=True)
class Claim:
    """One pre-specified test: effect = worst-case ASR of ``a`` − that of ``b`` (``b`` = "noise":
    ``a``'s own noise control), claimed ``direction`` beyond ``margin``."""

    text: str
    a: str
    b: str
    direction: str
    margin: float = 0.0


CLAIMS = (
    Claim("under its strongest transfer attack, Renofeation is fooled less often than end-to-end "
          "fine-tuning (worst-case ASR, difference < 0)", "renofeation", "fine-tune", "<"),
    Claim("under its strongest transfer attack, Renofeation is fooled less often than DELTA "
          "(worst-case ASR, difference < 0)", "renofeation", "delta", "<"),
    Claim("Renofeation's worst-case ASR is within ±5 points of re-training's (as robust as a model "
          "that never saw the source)", "renofeation", "re-training", "≈", EQUIVALENCE_MARGIN),
    Claim("Renofeation's worst-case ASR exceeds its noise control by less than 15 points (LOW "
          "exposure, the audit's band)", "renofeation", NOISE, "<", -LOW_GAP),
)


def _counts(df: pd.DataFrame, method: str, attack: str) -> Counts:
    """``{(seed, domain): (n_fooled, n_correct)}`` of one method under one attack."""
    sub = df[(df.method == method) & (df.attack == attack) & df.metric.isin([Metric.N_FOOLED,
                                                                           Metric.N_CORRECT])]
    wide = sub.pivot_table(index=["seed", "task"], columns="metric", values="value",
                           aggfunc="first")
    if wide.empty or not {"n_fooled", "n_correct"} <= set(wide.columns):
        return {}
    return {(int(s), str(t)): (int(r.n_fooled), int(r.n_correct))
            for (s, t), r in wide.iterrows()}


def _attacks(df: pd.DataFrame) -> list[str]:
    """The attacks crafted on the source: the paper's first, then the suite's, noise last."""
    have = set(df[df.metric == Metric.N_FOOLED].attack)
    suite = sorted(a for a in have if threat_of(a) is Threat.TRANSFER)
    return [a for a in (PAPER_ATTACK, *suite, NOISE) if a in have]


def _label(attack: str) -> str:
    if attack == PAPER_ATTACK:
        return "paper's feature attack (neuron 0)"
    if attack == NOISE:
        return "noise control"
    base, threat = parse_attack_name(attack)
    return base if threat is Threat.TRANSFER else attack


def _pooled(df: pd.DataFrame, method: str, attack: str) -> Effect | None:
    return bootstrap_effect(_counts(df, method, attack))


def worst_attack(df: pd.DataFrame, method: str) -> str | None:
    """The source attack (noise excluded) with the highest pooled ASR against ``method``."""
    best, best_v = None, -1.0
    for attack in _attacks(df):
        if attack == NOISE:
            continue
        c = _counts(df, method, attack)
        n = sum(v[1] for v in c.values())
        if n and sum(v[0] for v in c.values()) / n > best_v:
            best, best_v = attack, sum(v[0] for v in c.values()) / n
    return best


def check_claims(df: pd.DataFrame, family: str) -> list[Finding]:
    """The :data:`CLAIMS` of one family as findings with effect, interval and verdict."""
    out = []
    have = set(df.method)
    for c in CLAIMS:
        text = f"[{family}] {c.text}"
        needed = [c.a] + ([] if c.b == NOISE else [c.b])
        if not set(needed) <= have:
            continue
        weak = ClaimTester(df).weak_models([(m, {}) for m in needed])
        if weak:
            out.append(Finding(text, None, "not checkable: " + "; ".join(weak), about_attack=True))
            continue
        wa = worst_attack(df, c.a)
        wb = NOISE if c.b == NOISE else worst_attack(df, c.b)
        if wa is None or wb is None:
            out.append(Finding(text, None, "not checkable: no attack counts recorded"))
            continue
        eff = bootstrap_effect(_counts(df, c.a, wa), _counts(df, c.b if c.b != NOISE else c.a, wb))
        if eff is None:
            out.append(Finding(text, None, "not checkable: no correctly classified image"))
            continue
        verdict = decide(eff.low, eff.high, claimed=c.direction, margin=c.margin)
        held = {"held": True, "did not hold": False}.get(verdict)
        pa, pb = _pooled(df, c.a, wa), _pooled(df, c.b if c.b != NOISE else c.a, wb)
        other = "its noise control" if c.b == NOISE else f"{c.b} ({_label(wb)})"
        evidence = (f"worst-case ASR {c.a} {100 * pa.effect:.1f} % ({_label(wa)}) vs {other} "
                    f"{100 * pb.effect:.1f} %: difference {eff.text()}"
                    if pa is not None and pb is not None else eff.text())
        out.append(Finding(text, held, evidence, about_attack=True, effect=eff.effect,
                           ci_low=eff.low, ci_high=eff.high, seeds=eff.seeds,
                           n_images=eff.n_images, inconclusive=verdict == "inconclusive"))
    return out


def _cell(e: Effect | None) -> str:
    if e is None:
        return "–"
    return f"{100 * e.effect:.1f} [{100 * e.low:.1f}, {100 * e.high:.1f}]"


def asr_table(df: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """Method × attack: pooled ASR % [95 % CI], the worst case marked with *."""
    attacks = _attacks(df)
    rows = {}
    for m in [m for m in order if m in set(df.method)]:
        worst = worst_attack(df, m)
        rows[m] = [_cell(_pooled(df, m, a)) + (" *" if a == worst else "") for a in attacks]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=[_label(a) for a in attacks])
    out.index.name = "method"
    return out


def asr_figure(df: pd.DataFrame, order: list[str], title: str) -> plt.Figure:
    """Pooled ASR per attack (x) and method (colour) with 95 % interval whiskers; a log or
    symlog axis when the values span decades."""
    attacks = _attacks(df)
    methods = [m for m in order if m in set(df.method)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(attacks) + 2), 3.8))
    width = 0.8 / max(len(methods), 1)
    values = []
    for j, m in enumerate(methods):
        st = series_style(j)
        xs, ys, lo, hi = [], [], [], []
        for i, a in enumerate(attacks):
            e = _pooled(df, m, a)
            if e is None:
                continue
            xs.append(i + (j - (len(methods) - 1) / 2) * width)
            ys.append(100 * e.effect)
            lo.append(100 * (e.effect - e.low))
            hi.append(100 * (e.high - e.effect))
        values += ys
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt=st["marker"], color=st["color"], label=m,
                    markersize=6, capsize=3, lw=1)
    kind, kw = choose_yscale(values)
    apply_scale(ax, kind, kw)
    ax.set_xticks(range(len(attacks)), [_label(a) for a in attacks], rotation=20, ha="right",
                  fontsize=8)
    ax.set_ylabel("attack success rate (%)" + (f" ({kind} scale)" if kind != "linear" else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    legend_outside(ax, "target method")
    return fig


def _clean_table(df: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    sub = df[df.metric == Metric.CLEAN_ACC]
    rows = {}
    for m in [m for m in order if m in set(sub.method)]:
        v = sub[sub.method == m].value.astype(float) * 100
        half = ci_half_width(v)
        rows[m] = [f"{v.mean():.1f}" + (f" ± {half:.1f}" if not math.isnan(half) else ""),
                   str(len(v))]
    out = pd.DataFrame.from_dict(rows, orient="index",
                                 columns=["clean accuracy % (mean ± 95 % half-width)",
                                          "models (seeds × domains)"])
    out.index.name = "method"
    return out


def build_report(df: pd.DataFrame, out_dir: Path, plan: Paper2Plan) -> Report:
    """Markdown per family (tables, a figure) and the checked claims."""
    out_dir = Path(out_dir)
    md = [f"# {plan.experiment}: does Renofeation survive the strongest transfer attacks? "
          f"(paper 2, {plan.scale} scale)", "",
          "Every attack is crafted on the public source model alone and evaluated on every target "
          "(the threat of paper 2). ASR = share of the correctly classified test images that the "
          "attack makes wrong, pooled over target domains and seeds; brackets are 95 % intervals "
          "of a two-level bootstrap (seeds, then images). `*` marks each method's strongest "
          "attack, its worst case. Claims are tests fixed before the run on these worst cases: "
          "**held** when the whole interval is on the claimed side, **did not hold** when it is "
          "wholly on the other side, **inconclusive** otherwise.", ""]
    if plan.notes:
        md += [f"Notes: {plan.notes}", ""]
    findings: list[Finding] = []
    for fam in plan.families:
        fdf = df[df["family"] == fam.family]
        if fdf.empty:
            continue
        atk = fam.attack
        fdf = fdf[np.isclose(fdf.eps.astype(float), atk["eps"]) | (fdf.attack == CLEAN)]
        order = [r.label for r in fam.methods]
        src_txt = source_text(fam.source)
        suite = fam.suite or {}
        domains = ", ".join(t["domain"] for t in fam.targets)
        md += [f"## Family `{fam.family}`: source = {src_txt}", "",
               f"Targets: {domains}; seeds {len(fam.seeds)}; ε = {fmt_eps(atk['eps'])}. "
               f"The paper's attack: {atk['steps']} steps, neuron {atk['neuron']}. "
               f"Suite budget `{suite.get('budget', '?')}`: {suite.get('summary', '')}.", "",
               "### Clean accuracy", "", md_table(_clean_table(fdf, order)), "",
               "### Attack success rate (%) [95 % CI]", "", md_table(asr_table(fdf, order)), ""]
        png = f"{slug(fam.family)}_suite_asr.png"
        save_figure(asr_figure(fdf, order, f"{fam.family}: ASR of attacks crafted on the source"),
                    out_dir / png)
        md += [f"![{fam.family} suite ASR]({png})", ""]
        findings += check_claims(fdf, fam.family)
    md += ["## Which claims held on this run", "", findings_markdown(findings), ""]
    return Report("\n".join(md), findings)

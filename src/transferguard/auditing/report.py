"""The audit report: a verdict line, ASR curves, tables — readable in a minute.

Verdict (on the target at ε* = 8/255, or the audited ε closest to it): the *exposure gap* is the
attack success rate of the strongest attack crafted on the public source model (transfer FGSM,
transfer PGD or the feature attack) minus the success rate of uniform noise of the same ε —
what an attacker gains by knowing the source, beyond plain corruption.

* **HIGH** exposure: gap ≥ 40 percentage points;
* **MODERATE**: 15 ≤ gap < 40 points;
* **LOW**: gap < 15 points;
* **UNDETERMINED**: no image is classified correctly, so no success rate exists.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from ..reports.common import (
    bar_figure,
    fmt_eps,
    line_figure,
    md_table,
    pct,
    save_figure,
    series_style,
    write_report,
)

VERDICT_EPS = 8 / 255
HIGH_GAP = 0.40
MODERATE_GAP = 0.15
TRANSFER_ATTACKS = ("fgsm-transfer", "pgd-transfer", "feature-transfer")
LABELS = {"fgsm-transfer": "FGSM transfer", "pgd-transfer": "PGD transfer",
          "feature-transfer": "feature attack (source)", "noise": "noise control",
          "fgsm-white": "FGSM white-box", "pgd-white": "PGD white-box"}
ORDER = ["feature-transfer", "pgd-transfer", "fgsm-transfer", "pgd-white", "fgsm-white", "noise"]


def verdict_eps(eps_values: list[float]) -> float:
    """ε* of the verdict: 8/255 when audited, else the audited ε closest to it."""
    return min(eps_values, key=lambda e: (abs(e - VERDICT_EPS), -e))


def _asr(df: pd.DataFrame, method: str, attack: str, eps: float) -> float:
    sel = df[(df.method == method) & (df.attack == attack) & (df.metric == "asr")
             & ((df.eps - eps).abs() < 1e-12)]["value"]
    return float(sel.iloc[0]) if len(sel) else math.nan


def exposure(df: pd.DataFrame, method: str, eps: float) -> tuple[str, float, float, str]:
    """``(level, best transfer ASR, noise ASR, best attack)`` of ``method`` at ``eps``."""
    scores = {a: _asr(df, method, a, eps) for a in TRANSFER_ATTACKS}
    scores = {a: v for a, v in scores.items() if not math.isnan(v)}
    noise = _asr(df, method, "noise", eps)
    if not scores or math.isnan(noise):
        return "UNDETERMINED", math.nan, noise, ""
    best_attack = max(scores, key=lambda a: scores[a])
    best = scores[best_attack]
    gap = best - noise
    level = "HIGH" if gap >= HIGH_GAP else "MODERATE" if gap >= MODERATE_GAP else "LOW"
    return level, best, noise, best_attack


def verdict_line(df: pd.DataFrame) -> str:
    """One Markdown line: exposure level of the target, and what each reference would change."""
    asr = df[df.metric == "asr"]
    if asr.empty:
        return "**UNDETERMINED exposure**: no attack result was recorded."
    e = verdict_eps(sorted(asr.eps.unique()))
    level, best, noise, attack = exposure(df, "target", e)
    if level == "UNDETERMINED":
        return (f"**UNDETERMINED exposure**: the target classifies no audited image correctly, "
                f"so no attack success rate exists at ε={fmt_eps(e)}.")
    line = (f"**{level} exposure**: attacks crafted on the public source model fool {pct(best)} "
            f"of the correctly classified images at ε={fmt_eps(e)} (strongest: "
            f"{LABELS[attack]}; noise control: {pct(noise)}).")
    for method in sorted(m for m in df.method.unique() if m.startswith("reference:")):
        r_level, r_best, _, _ = exposure(df, method, e)
        if math.isnan(r_best):  # said, not silently dropped: nothing to attack on this model
            line += (f" A `{method.split(':', 1)[1]}` model trained here instead classifies "
                     "none of the audit images correctly, so its exposure cannot be measured.")
        else:
            acc = df[(df.method == method) & (df.metric == "clean_acc")]["value"]
            acc_txt = f" (clean accuracy {pct(float(acc.iloc[0]))})" if len(acc) else ""
            line += (f" A `{method.split(':', 1)[1]}` model trained here instead{acc_txt}: "
                     f"{pct(r_best)} ({100 * (r_best - best):+.0f} points, {r_level} exposure).")
    return line


ASR_LABEL = "attack success rate (%)"
SOURCE_ATTACKS = ("feature-transfer", "pgd-transfer", "fgsm-transfer", "noise")


def _model_name(method: str) -> str:
    return method.split(":", 1)[-1]


def target_figure(df: pd.DataFrame) -> plt.Figure | None:
    """ASR of every attack on the target over ε; grouped bars when a single ε was audited."""
    rows = df[(df.metric == "asr") & (df.method == "target")]
    if rows.empty:
        return None
    order = [LABELS[a] for a in ORDER if a in set(rows.attack)]
    styles = {LABELS[a]: series_style(i) for i, a in enumerate(ORDER)}
    return line_figure(rows.assign(attack=rows.attack.map(LABELS)), x="eps", hue="attack",
                       title="Target: attack success rate", ylabel=ASR_LABEL, order=order,
                       styles=styles)


def models_figure(df: pd.DataFrame) -> plt.Figure | None:
    """Target vs the trained references under the attacks crafted on the source.

    Colour and marker name the attack, the line's dash the model; a single ε gives bars grouped
    by attack, one per model.
    """
    asr = df[df.metric == "asr"]
    refs = [m for m in dict.fromkeys(asr.method) if m.startswith("reference:")]
    shown = [a for a in SOURCE_ATTACKS if a in set(asr.attack)]
    sub = asr[asr.attack.isin(shown) & asr.method.isin(["target", *refs])]
    if not refs or sub.empty:
        return None
    models = ["target", *refs]
    title = "Target vs reference: ASR of source attacks"
    if sub.eps.nunique() == 1:
        rank = {a: i for i, a in enumerate(SOURCE_ATTACKS)}
        bars = sub.sort_values("attack", key=lambda c: c.map(rank), kind="stable")
        bars = bars.assign(attack=bars.attack.map(LABELS), method=bars.method.map(_model_name))
        return bar_figure(bars, group="attack", hue="method", title=title, ylabel=ASR_LABEL,
                          order=[_model_name(m) for m in models],
                          xlabel=f"attack crafted on the source, ε = {fmt_eps(sub.eps.iloc[0])}")
    styles, order = {}, []
    for i, a in enumerate(SOURCE_ATTACKS):
        if a not in shown:
            continue
        for k, m in enumerate(models):
            name = f"{_model_name(m)} · {LABELS[a]}"
            j = len(order)  # later series: smaller markers on top, so coinciding ones show
            st = series_style(i)
            st.update(linestyle=("-", "--", ":", "-.")[k % 4], markersize=max(9.0 - 0.8 * j, 3.5),
                      zorder=2 + 0.1 * j, markerfacecolor="none" if k else st["color"])
            styles[name] = st
            order.append(name)
    lines = sub.assign(attack=sub.method.map(_model_name) + " · " + sub.attack.map(LABELS))
    return line_figure(lines, x="eps", hue="attack", title=title, ylabel=ASR_LABEL, order=order,
                       styles=styles)


def _eps_table(df: pd.DataFrame, metric: str, rows: list[tuple[str, str]], scale: float = 100.0,
               digits: int = 1) -> pd.DataFrame:
    sub = df[df.metric == metric]
    eps_values = sorted(sub.eps.unique())
    table = {}
    for method, attack in rows:
        g = sub[(sub.method == method) & (sub.attack == attack)].set_index("eps")["value"]
        if g.empty:
            continue
        name = LABELS.get(attack, attack) if method == "target" else \
            f"{method.split(':', 1)[-1]} · {LABELS.get(attack, attack)}"
        table[name] = [("–" if e not in g.index or math.isnan(g[e]) else
                        f"{scale * float(g[e]):.{digits}f}") for e in eps_values]
    out = pd.DataFrame.from_dict(table, orient="index", columns=[fmt_eps(e) for e in eps_values])
    out.index.name = "attack"
    return out


def _model_table(df: pd.DataFrame) -> pd.DataFrame:
    none = df[df.attack == "none"]
    metrics = [("clean_acc", "clean acc. %", 100.0, 1), ("grad_norm_mean", "‖∇x‖₂ mean", 1.0, 4),
               ("grad_norm_median", "‖∇x‖₂ median", 1.0, 4), ("grad_norm_p90", "‖∇x‖₂ 90th pct", 1.0, 4),
               ("weight_distance", "weight dist. to source", 1.0, 3),
               ("feature_distance", "feature dist. to source", 1.0, 3)]
    rows = {}
    for method in dict.fromkeys(none.method):
        g = none[none.method == method].set_index("metric")["value"]
        rows[method] = [(f"{s * float(g[m]):.{d}f}" if m in g.index and not math.isnan(g[m])
                         else "–") for m, _, s, d in metrics]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=[t for _, t, _, _ in metrics])
    out.index.name = "model"
    return out


def write_audit_report(df: pd.DataFrame, out_dir: Path, *, source: str, target: str, data: str,
                       notes: list[str], label_attacks: bool, seconds: float) -> str:
    """Write ``report.md``, ``report.html`` and the ASR figures into ``out_dir``; return the Markdown."""
    out_dir = Path(out_dir)
    methods = [m for m in dict.fromkeys(df.method) if m != "source"]
    asr = df[(df.metric == "asr")]
    e_star = verdict_eps(sorted(asr.eps.unique())) if not asr.empty else VERDICT_EPS
    md = ["# Transfer-attack audit", "", verdict_line(df), "",
          f"Exposure = success rate of the strongest attack crafted on the source minus that of "
          f"uniform noise, at ε={fmt_eps(e_star)}: **HIGH** ≥ {100 * HIGH_GAP:.0f} percentage "
          f"points, **MODERATE** {100 * MODERATE_GAP:.0f}–{100 * HIGH_GAP:.0f}, **LOW** < "
          f"{100 * MODERATE_GAP:.0f}. "
          "Success rate (ASR) = share of the correctly classified images that the attack "
          "makes wrong.", "", "## Setup", "",
          f"- Source (public, attacker's model): `{source}`",
          f"- Target (audited): `{target}`",
          f"- Data: `{data}`"]
    md += [f"- {n}" for n in notes]
    md += [f"- Audit time: {seconds:.1f} s.", ""]

    target_rows = asr[asr.method == "target"]
    if not target_rows.empty:
        order = [a for a in ORDER if a in set(target_rows.attack)]
        save_figure(target_figure(df), out_dir / "asr-target.png")
        md += ["## Attack success rate on the target (%)", "",
               md_table(_eps_table(df, "asr", [("target", a) for a in order])), "",
               "![ASR on the target](asr-target.png)", ""]
        if not label_attacks:
            md += ["Label-based transfer attacks were not run: the source's classes differ from "
                   "the data's (see Setup).", ""]
    refs = [m for m in methods if m.startswith("reference:")]
    if refs:
        shown = [a for a in SOURCE_ATTACKS if a in set(asr.attack)]
        cmp_rows = [(m, a) for a in shown for m in ["target", *refs]]
        fig = models_figure(df)
        if fig is not None:
            save_figure(fig, out_dir / "asr-models.png")
        table = _eps_table(df, "asr", cmp_rows)
        table.index = [("target · " + i) if "·" not in i else i for i in table.index]
        md += ["## What a defence would buy: target vs reference (ASR %)", "",
               md_table(table, "model · attack"), "", "![ASR target vs reference](asr-models.png)",
               ""]
    gamma_rows = [(m, a) for m in methods for a in ("fgsm-transfer", "pgd-transfer")]
    gamma = _eps_table(df, "gamma", gamma_rows, scale=1.0, digits=2)
    if not gamma.empty:
        md += ["## Transferability γ = (a_black − a_white) / a_white", "",
               "Accuracy under the transfer attack relative to the white-box attack of the same "
               "kind (conditional accuracies); small γ: the public model is nearly as good a "
               "weapon as the model itself.", "", md_table(gamma), ""]
    md += ["## Models", "", md_table(_model_table(df)), "",
           "Gradient norms are ‖∇x CE‖₂ in pixel space; distances (ℓ2, head excluded) only "
           "when source and model share the architecture.", "",
           "All numbers are in `results.csv` (metrics: clean_acc, adv_acc = correct clean and "
           "adversarial over all images, adv_acc_cond = over the clean-correct ones, asr, gamma, "
           "grad_norm_*, weight_distance, feature_distance).", ""]
    text = "\n".join(md)
    write_report(out_dir, text, "Transfer-attack audit")
    return text

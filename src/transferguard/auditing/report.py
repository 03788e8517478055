"""The audit report: a verdict line, ASR curves, tables — readable in a minute.

Verdict (on the target at the verdict ε, 8/255 unless ``verdict_eps`` says otherwise): the
*exposure gap* is the attack success rate (ASR) of the strongest attack crafted on the public
source model (every ``*-transfer`` attack of the run) minus the success rate of uniform noise of
the same ε — what an attacker gains by knowing the source, beyond plain corruption. Each ASR is
k/N (N = images the model classifies correctly) with a 95 % Wilson interval; the gap's 95 %
interval is Newcombe's hybrid score interval for a difference of two proportions (it treats the
attack and the noise as independent; on the same images it is conservative). The bands apply
to that interval:

* **HIGH** exposure: the whole interval ≥ 40 percentage points;
* **MODERATE**: the whole interval in [15, 40) points;
* **LOW**: the whole interval < 15 points;
* **UNDETERMINED**: the interval spans two bands (too few images to tell), or no image is
  classified correctly, so no success rate exists.

Picking the strongest of several attacks and then reading its interval favours the attacker
slightly (a winner's pick); for an audit that errs on the side of caution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
from ..results import CLEAN, NOISE, Metric, Threat, attack_name, parse_attack_name, threat_of
from ..stats import Rate, gap_interval, wilson  # noqa: F401 - re-exported for the audit API

if TYPE_CHECKING:
    import torch

VERDICT_EPS = 8 / 255
HIGH_GAP = 0.40
MODERATE_GAP = 0.15
#: The label-based and feature attacks the audit has always run; any other ``*-transfer``
#: attack in the table (the transfer suite) counts for the worst case too.
FGSM_TRANSFER, PGD_TRANSFER, FEATURE_TRANSFER = (attack_name(a, Threat.TRANSFER)
                                                  for a in ("fgsm", "pgd", "feature"))
FGSM_WHITE, PGD_WHITE = (attack_name(a, Threat.WHITE) for a in ("fgsm", "pgd"))
TRANSFER_ATTACKS = (FGSM_TRANSFER, PGD_TRANSFER, FEATURE_TRANSFER)
LABELS = {FGSM_TRANSFER: "FGSM transfer", PGD_TRANSFER: "PGD transfer",
          FEATURE_TRANSFER: "feature attack (source)", NOISE: "noise control",
          FGSM_WHITE: "FGSM white-box", PGD_WHITE: "PGD white-box"}
ORDER = [FEATURE_TRANSFER, PGD_TRANSFER, FGSM_TRANSFER, PGD_WHITE, FGSM_WHITE, NOISE]


def verdict_eps(eps_values: list[float], wanted: float = VERDICT_EPS) -> float:
    """ε* of the verdict: ``wanted`` when audited, else the audited ε closest to it."""
    return min(eps_values, key=lambda e: (abs(e - wanted), -e))


def _value(df: pd.DataFrame, method: str, attack: str, eps: float, metric: str) -> float:
    sel = df[(df.method == method) & (df.attack == attack) & (df.metric == metric)
             & ((df.eps - eps).abs() < 1e-12)]["value"]
    return float(sel.iloc[0]) if len(sel) else math.nan


def _asr(df: pd.DataFrame, method: str, attack: str, eps: float) -> float:
    return _value(df, method, attack, eps, Metric.ASR)


def transfer_attacks(df: pd.DataFrame) -> list[str]:
    """Every attack of the table crafted on the source alone (the worst case is taken over them)."""
    names = [a for a in dict.fromkeys(df.attack) if threat_of(str(a)) is Threat.TRANSFER]
    return sorted(names, key=lambda a: (a not in TRANSFER_ATTACKS, a))


def rate(df: pd.DataFrame, method: str, attack: str, eps: float) -> Rate | None:
    """k/n of an attack on ``method``: from the count rows, else from ASR × correct images."""
    n = _value(df, method, attack, eps, Metric.N_CORRECT)
    k = _value(df, method, attack, eps, Metric.N_FOOLED)
    if math.isnan(n) or math.isnan(k):
        asr = _asr(df, method, attack, eps)
        n_img = _value(df, method, CLEAN, 0.0, Metric.N_IMAGES)
        acc = _value(df, method, CLEAN, 0.0, Metric.CLEAN_ACC)
        if math.isnan(asr) or math.isnan(n_img) or math.isnan(acc):
            return None
        n = round(acc * n_img)
        k = round(asr * n)
    return Rate.of(int(k), int(n))


def band(low: float, high: float) -> str:
    """HIGH / MODERATE / LOW when the whole interval lies in one band, else UNDETERMINED."""
    def of(v: float) -> str:
        return "HIGH" if v >= HIGH_GAP else "MODERATE" if v >= MODERATE_GAP else "LOW"

    return of(low) if of(low) == of(high) else "UNDETERMINED"


@dataclass(frozen=True)
class Exposure:
    """The verdict of one model: band, the strongest source attack, noise, and the gap's CI."""

    level: str
    attack: str
    best: Rate | None
    noise: Rate | None
    gap_low: float = math.nan
    gap_high: float = math.nan

    @property
    def spans(self) -> str:
        """The two bands an UNDETERMINED interval straddles (empty otherwise)."""
        if self.level != "UNDETERMINED" or math.isnan(self.gap_low):
            return ""
        return " and ".join(sorted({band(self.gap_low, self.gap_low),
                                    band(self.gap_high, self.gap_high)},
                                   key=["LOW", "MODERATE", "HIGH"].index))


def exposure_of(df: pd.DataFrame, method: str, eps: float) -> Exposure:
    """The exposure verdict of ``method`` at ``eps`` (see the module doc)."""
    rates = {a: rate(df, method, a, eps) for a in transfer_attacks(df)}
    rates = {a: r for a, r in rates.items() if r is not None and r.n > 0}
    noise = rate(df, method, NOISE, eps)
    if not rates or noise is None or noise.n == 0:
        return Exposure("UNDETERMINED", "", None, noise)
    attack = max(rates, key=lambda a: (rates[a].value, -transfer_attacks(df).index(a)))
    lo, hi = gap_interval(rates[attack], noise)
    return Exposure(band(lo, hi), attack, rates[attack], noise, lo, hi)


def exposure(df: pd.DataFrame, method: str, eps: float) -> tuple[str, float, float, str]:
    """``(level, best transfer ASR, noise ASR, best attack)`` of ``method`` at ``eps``."""
    e = exposure_of(df, method, eps)
    best = e.best.value if e.best is not None else math.nan
    noise = e.noise.value if e.noise is not None else math.nan
    return e.level, best, noise, e.attack


def label(attack: str) -> str:
    """A reader's name for an attack of the table."""
    if attack in LABELS:
        return LABELS[attack]
    base, threat = parse_attack_name(attack)
    return f"{base} ({'source' if threat is Threat.TRANSFER else 'white-box'})"


def verdict_line(df: pd.DataFrame, wanted: float | None = None) -> str:
    """One Markdown line: exposure of the target with counts and intervals, and what each
    reference would change. ``wanted`` is the verdict ε (default: recorded in the table's
    ``verdict_eps`` rows, else 8/255)."""
    asr = df[df.metric == Metric.ASR]
    if asr.empty:
        return "**UNDETERMINED exposure**: no attack result was recorded."
    e = verdict_eps(sorted(asr.eps.unique()), _wanted_eps(df, wanted))
    ex = exposure_of(df, "target", e)
    if ex.best is None:
        return (f"**UNDETERMINED exposure**: the target classifies no audited image correctly, "
                f"so no attack success rate exists at ε={fmt_eps(e)}.")
    gap = (f"gap over noise {100 * (ex.best.value - ex.noise.value):.1f} points, 95 % CI "
           f"{100 * ex.gap_low:.1f} to {100 * ex.gap_high:.1f}"
           + (f", which spans {ex.spans}" if ex.spans else ""))
    line = (f"**{ex.level} exposure**: attacks crafted on the public source model fool "
            f"{ex.best.text()} of the correctly classified images at ε={fmt_eps(e)} "
            f"(strongest: {label(ex.attack)}; noise control: {ex.noise.text()}; {gap}).")
    for method in sorted(m for m in df.method.unique() if m.startswith("reference:")):
        r = exposure_of(df, method, e)
        name = method.split(":", 1)[1]
        if r.best is None:  # said, not silently dropped: nothing to attack on this model
            line += (f" A `{name}` model trained here instead classifies "
                     "none of the audit images correctly, so its exposure cannot be measured.")
        else:
            acc = df[(df.method == method) & (df.metric == Metric.CLEAN_ACC)]["value"]
            acc_txt = f" (clean accuracy {pct(float(acc.iloc[0]))})" if len(acc) else ""
            line += (f" A `{name}` model trained here instead{acc_txt}: {r.best.text()} "
                     f"({100 * (r.best.value - ex.best.value):+.0f} points, {r.level} exposure).")
    return line


def _wanted_eps(df: pd.DataFrame, wanted: float | None) -> float:
    if wanted is not None:
        return float(wanted)
    rec = df[df.metric == Metric.VERDICT_EPS]["value"]
    return float(rec.iloc[0]) if len(rec) else VERDICT_EPS


ASR_LABEL = "attack success rate (%)"


@dataclass(frozen=True)
class Examples:
    """A few audit images, clean and under the verdict's attack, with the target's predictions."""

    attack: str
    eps: float
    clean: torch.Tensor
    adv: torch.Tensor
    labels: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor
    classes: list[str]


def examples_figure(ex: Examples) -> plt.Figure:
    """Two rows (clean above, adversarial below) of images titled with the target's prediction;
    a wrong prediction is written in red."""
    n = len(ex.labels)
    fig, axes = plt.subplots(2, n, figsize=(1.5 * n + 0.6, 4.1), squeeze=False)

    def name(i: int) -> str:
        i = int(i)
        return ex.classes[i] if 0 <= i < len(ex.classes) else str(i)

    for j in range(n):
        for r, (img, pred) in enumerate(((ex.clean[j], ex.clean_pred[j]),
                                         (ex.adv[j], ex.adv_pred[j]))):
            ax = axes[r][j]
            pic = img.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(pic[..., 0] if pic.shape[-1] == 1 else pic,
                      cmap="gray" if pic.shape[-1] == 1 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            wrong = int(pred) != int(ex.labels[j])
            head = f"true {name(ex.labels[j])}\n" if r == 0 else ""
            ax.set_title(f"{head}→ {name(pred)}", fontsize=8,
                         color="#c0392b" if wrong else "black")
    axes[0][0].set_ylabel("clean", fontsize=8)
    axes[1][0].set_ylabel(f"{label(ex.attack)}\nε = {fmt_eps(ex.eps)}", fontsize=8)
    fig.suptitle("Target's predictions on clean images and on the strongest source attack "
                 "(red: wrong)", fontsize=9)
    fig.tight_layout(h_pad=1.6)
    return fig
SOURCE_ATTACKS = (FEATURE_TRANSFER, PGD_TRANSFER, FGSM_TRANSFER, NOISE)


def attack_order(present) -> list[str]:  # noqa: ANN001 - any iterable of attack names
    """The attacks present, the classic ones in :data:`ORDER` first, then the suite's by name."""
    have = set(present)
    return [a for a in ORDER if a in have] + sorted(have - set(ORDER) - {CLEAN})


def _source_attacks(present) -> list[str]:  # noqa: ANN001
    """Attacks crafted on the source (and the noise control) among ``present``, in report order."""
    return [a for a in attack_order(present) if threat_of(a) is Threat.TRANSFER or a == NOISE]


def _model_name(method: str) -> str:
    return method.split(":", 1)[-1]


def target_figure(df: pd.DataFrame) -> plt.Figure | None:
    """ASR of every attack on the target over ε; grouped bars when a single ε was audited."""
    rows = df[(df.metric == Metric.ASR) & (df.method == "target")]
    if rows.empty:
        return None
    attacks_here = attack_order(rows.attack)
    order = [label(a) for a in attacks_here]
    styles = {label(a): series_style(i) for i, a in enumerate(attacks_here)}
    return line_figure(rows.assign(attack=rows.attack.map(label)), x="eps", hue="attack",
                       title="Target: attack success rate", ylabel=ASR_LABEL, order=order,
                       styles=styles, yscale="auto")


def models_figure(df: pd.DataFrame) -> plt.Figure | None:
    """Target vs the trained references under the attacks crafted on the source.

    Colour and marker name the attack, the line's dash the model; a single ε gives bars grouped
    by attack, one per model.
    """
    asr = df[df.metric == Metric.ASR]
    refs = [m for m in dict.fromkeys(asr.method) if m.startswith("reference:")]
    shown = _source_attacks(asr.attack)
    sub = asr[asr.attack.isin(shown) & asr.method.isin(["target", *refs])]
    if not refs or sub.empty:
        return None
    models = ["target", *refs]
    title = "Target vs reference: ASR of source attacks"
    if sub.eps.nunique() == 1:
        rank = {a: i for i, a in enumerate(shown)}
        bars = sub.sort_values("attack", key=lambda c: c.map(rank), kind="stable")
        bars = bars.assign(attack=bars.attack.map(label), method=bars.method.map(_model_name))
        return bar_figure(bars, group="attack", hue="method", title=title, ylabel=ASR_LABEL,
                          order=[_model_name(m) for m in models],
                          xlabel=f"attack crafted on the source, ε = {fmt_eps(sub.eps.iloc[0])}")
    styles, order = {}, []
    for i, a in enumerate(shown):
        for k, m in enumerate(models):
            name = f"{_model_name(m)} · {label(a)}"
            j = len(order)  # later series: smaller markers on top, so coinciding ones show
            st = series_style(i)
            st.update(linestyle=("-", "--", ":", "-.")[k % 4], markersize=max(9.0 - 0.8 * j, 3.5),
                      zorder=2 + 0.1 * j, markerfacecolor="none" if k else st["color"])
            styles[name] = st
            order.append(name)
    lines = sub.assign(attack=sub.method.map(_model_name) + " · " + sub.attack.map(label))
    return line_figure(lines, x="eps", hue="attack", title=title, ylabel=ASR_LABEL, order=order,
                       styles=styles, yscale="auto")


def _eps_table(df: pd.DataFrame, metric: str, rows: list[tuple[str, str]], scale: float = 100.0,
               digits: int = 1) -> pd.DataFrame:
    sub = df[df.metric == metric]
    eps_values = sorted(sub.eps.unique())
    table = {}
    for method, attack in rows:
        g = sub[(sub.method == method) & (sub.attack == attack)].set_index("eps")["value"]
        if g.empty:
            continue
        name = label(attack) if method == "target" else \
            f"{method.split(':', 1)[-1]} · {label(attack)}"
        table[name] = [("–" if e not in g.index or math.isnan(g[e]) else
                        f"{scale * float(g[e]):.{digits}f}") for e in eps_values]
    out = pd.DataFrame.from_dict(table, orient="index", columns=[fmt_eps(e) for e in eps_values])
    out.index.name = "attack"
    return out


def _model_table(df: pd.DataFrame) -> pd.DataFrame:
    none = df[df.attack == CLEAN]
    metrics = [(Metric.CLEAN_ACC, "clean acc. %", 100.0, 1),
               (Metric.GRAD_NORM_MEAN, "‖∇x‖₂ mean", 1.0, 4),
               (Metric.GRAD_NORM_MEDIAN, "‖∇x‖₂ median", 1.0, 4),
               (Metric.GRAD_NORM_P90, "‖∇x‖₂ 90th pct", 1.0, 4),
               (Metric.WEIGHT_DISTANCE, "weight dist. to source", 1.0, 3),
               (Metric.FEATURE_DISTANCE, "feature dist. to source", 1.0, 3)]
    rows = {}
    for method in dict.fromkeys(none.method):
        g = none[none.method == method].set_index("metric")["value"]
        rows[method] = [(f"{s * float(g[m]):.{d}f}" if m in g.index and not math.isnan(g[m])
                         else "–") for m, _, s, d in metrics]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=[t for _, t, _, _ in metrics])
    out.index.name = "model"
    return out


def write_audit_report(df: pd.DataFrame, out_dir: Path, *, source: str, target: str, data: str,
                       notes: list[str], label_attacks: bool, seconds: float,
                       examples: Examples | None = None) -> str:
    """Write ``report.md``, ``report.html``, the ASR figures and (given ``examples``) the example
    grid into ``out_dir``; return the Markdown."""
    out_dir = Path(out_dir)
    methods = [m for m in dict.fromkeys(df.method) if m != "source"]
    asr = df[(df.metric == Metric.ASR)]
    e_star = (verdict_eps(sorted(asr.eps.unique()), _wanted_eps(df, None)) if not asr.empty
              else VERDICT_EPS)
    md = ["# Transfer-attack audit", "", verdict_line(df), "",
          f"Exposure = success rate of the strongest attack crafted on the source minus that of "
          f"uniform noise, at ε={fmt_eps(e_star)}, with its 95 % interval: **HIGH** when the "
          f"whole interval is ≥ {100 * HIGH_GAP:.0f} percentage points, **MODERATE** when it "
          f"lies in {100 * MODERATE_GAP:.0f}–{100 * HIGH_GAP:.0f}, **LOW** when it is below "
          f"{100 * MODERATE_GAP:.0f}, **UNDETERMINED** when it spans two bands. "
          "Success rate (ASR) = share of the correctly classified images that the attack "
          "makes wrong, given as k/N with a 95 % Wilson interval; the gap's interval is "
          "Newcombe's (conservative for attacks on the same images).", "", "## Setup", "",
          f"- Source (public, attacker's model): `{source}`",
          f"- Target (audited): `{target}`",
          f"- Data: `{data}`"]
    md += [f"- {n}" for n in notes]
    md += [f"- Audit time: {seconds:.1f} s.", ""]

    target_rows = asr[asr.method == "target"]
    if not target_rows.empty:
        order = attack_order(target_rows.attack)
        save_figure(target_figure(df), out_dir / "asr-target.png")
        md += ["## Attack success rate on the target (%)", "",
               md_table(_eps_table(df, Metric.ASR, [("target", a) for a in order])), "",
               "![ASR on the target](asr-target.png)", ""]
        if not label_attacks:
            md += ["Label-based transfer attacks were not run: the source's classes differ from "
                   "the data's (see Setup).", ""]
    if examples is not None:
        save_figure(examples_figure(examples), out_dir / "examples.png")
        fooled = int(((examples.clean_pred == examples.labels)
                      & (examples.adv_pred != examples.labels)).sum())
        md += ["## Example images", "",
               f"{len(examples.labels)} audit images (those among the first 32 that the attack "
               f"fools come first), clean and under {label(examples.attack)} at "
               f"ε = {fmt_eps(examples.eps)} (the verdict's attack), with the target's "
               f"predictions: {fooled} of these {len(examples.labels)} correct predictions "
               "change.", "", "![Example images](examples.png)", ""]
    refs = [m for m in methods if m.startswith("reference:")]
    if refs:
        shown = _source_attacks(asr.attack)
        cmp_rows = [(m, a) for a in shown for m in ["target", *refs]]
        fig = models_figure(df)
        if fig is not None:
            save_figure(fig, out_dir / "asr-models.png")
        table = _eps_table(df, Metric.ASR, cmp_rows)
        table.index = [("target · " + i) if "·" not in i else i for i in table.index]
        md += ["## What a defence would buy: target vs reference (ASR %)", "",
               md_table(table, "model · attack"), "", "![ASR target vs reference](asr-models.png)",
               ""]
    gamma_rows = [(m, a) for m in methods for a in (FGSM_TRANSFER, PGD_TRANSFER)]
    gamma = _eps_table(df, Metric.GAMMA, gamma_rows, scale=1.0, digits=2)
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

"""Report building blocks: mean ± 95 % interval tables, Markdown, figures, findings, HTML.

Everything here reads a tidy results table (pandas DataFrame with the columns of
:data:`transferguard.results.RESULT_COLUMNS`) and nothing else.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.legend import Legend  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from .._io import atomic_write, atomic_write_text  # noqa: E402
from ..results import FINDING_COLUMNS, findings_frame  # noqa: E402, F401 - re-exported


def fmt_eps(eps: float) -> str:
    """ε in pixel units as a person reads it: 0.0313… → '8/255'."""
    if eps == 0:
        return "0"
    k = eps * 255
    if abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    frac = Fraction(eps).limit_denominator(1000)
    return f"{frac.numerator}/{frac.denominator}" if abs(float(frac) - eps) < 1e-9 else f"{eps:.4g}"


def ci_half_width(values: Any) -> float:
    """Half-width of the 95 % t-interval of the mean of ``values`` (over seeds); nan for < 2."""
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce").dropna(), dtype=float)
    if v.size < 2:
        return math.nan
    from scipy.stats import t

    return float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))


def mean_ci(values: pd.Series, pct: bool = True, spec: str | None = None) -> str:
    """'84.2 ± 1.3' (percent): the mean over seeds ± the half-width of its 95 % t-interval
    (:func:`ci_half_width`); a single seed shows no ±. Seeds whose value is undefined (nan, e.g.
    γ when white-box FGSM fooled every image) are left out and counted: '145.1 (2 of 3 seeds)'.
    ``spec``: the numbers' format (default ``.1f`` in percent, ``.3f`` otherwise)."""
    v = values.dropna().astype(float)
    if v.empty:
        return "–"
    spec = spec or (".1f" if pct else ".3f")
    scale = 100.0 if pct else 1.0
    text = format(v.mean() * scale, spec)
    if len(v) > 1:
        text += " ± " + format(ci_half_width(v) * scale, spec)
    return text if len(v) == len(values) else f"{text} ({len(v)} of {len(values)} seeds)"


def pivot_mean_ci(df: pd.DataFrame, index: str, columns: str, pct: bool = True,
                  col_fmt=None) -> pd.DataFrame:
    """Pivot of :func:`mean_ci` over seeds (strings), index × columns."""
    out = df.groupby([index, columns])["value"].apply(lambda s: mean_ci(s, pct)).unstack(columns)
    if col_fmt is not None:
        out.columns = [col_fmt(c) for c in out.columns]
    return out


#: How every report's tables and figures state their uncertainty.
UNCERTAINTY_NOTE = ("Tables show the mean over seeds ± the half-width of its 95 % t-interval "
                    "(no ± with one seed; \"k of n seeds\" where the others have no value); "
                    "figures draw the same interval as error bars or bands.")


def md_table(df: pd.DataFrame, index_name: str | None = None) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table (index as the first column)."""
    cols = [index_name or (df.index.name or "")] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [str(v) for v in row.tolist()]) + " |")
    return "\n".join(lines)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Save a figure atomically as PNG and close it."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def fmt_eps255(eps: float) -> str:
    """ε as a tick on an axis labelled "ε (/255)": 8/255 → '8', 2.5/255 → '2.5'."""
    k = float(eps) * 255
    return str(round(k)) if abs(k - round(k)) < 1e-6 else f"{k:.3g}"


#: x-axis label of every ε axis: ticks are :func:`fmt_eps255` values, i.e. ε in 1/255 pixel units.
EPS_LABEL = "ε (/255, pixel units)"

#: 18 distinguishable colours (tab10, then Dark2): up to 18 series never share one.
_COLORS = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*", "h", "p", "d", "8")
_DASHES = ("-", "--", "-.", ":")


def series_style(i: int) -> dict[str, Any]:
    """Colour, marker, dash and size of the ``i``-th series.

    Markers shrink from one series to the next and later ones are drawn on top, so series that
    coincide still show as concentric markers of distinct shape and colour rather than hiding
    each other.
    """
    return {"color": _COLORS[i % len(_COLORS)], "marker": _MARKERS[i % len(_MARKERS)],
            "linestyle": _DASHES[i % len(_DASHES)], "markersize": max(8.0 - 1.2 * i, 3.5),
            "zorder": 2 + 0.1 * i}


def legend_outside(ax: plt.Axes, title: str | None = None) -> Legend | None:
    """The legend to the right of the axes, clear of the data (``bbox_inches='tight'`` keeps it)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                     borderaxespad=0.0, fontsize=8, frameon=False, title=title,
                     title_fontsize=8)


def _plain(v: float, _pos: Any = None) -> str:
    """Tick label of a log axis as a plain number (0.01, 1, 10), not 10⁻²."""
    return "0" if v == 0 else f"{v:g}"


def choose_yscale(values: Any) -> tuple[str, dict[str, Any]]:
    """``('linear' | 'log' | 'symlog', kwargs)`` for values plotted on one axis.

    Log when every value is positive and they span more than a factor 10; symlog (linear only
    within ±``linthresh``, the smallest non-zero magnitude's decade) when some are ≤ 0 and the
    non-zero magnitudes span more than a factor 10; linear otherwise.
    """
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce").dropna(), dtype=float)
    v = v[np.isfinite(v)]
    mag = np.abs(v[v != 0])
    if mag.size == 0 or mag.max() <= 10 * mag.min():
        return "linear", {}
    if (v > 0).all():
        return "log", {}
    linthresh = max(10.0 ** math.floor(math.log10(mag.min())), mag.max() * 1e-4)
    return "symlog", {"linthresh": linthresh, "linscale": 0.5}


def apply_scale(ax: plt.Axes, scale: str, kwargs: dict[str, Any], axis: str = "y") -> None:
    """Set the scale of the ``axis`` ('x' or 'y'); log scales get plainly written ticks."""
    (ax.set_yscale if axis == "y" else ax.set_xscale)(scale, **kwargs)
    if scale != "linear":
        which = ax.yaxis if axis == "y" else ax.xaxis
        which.set_major_formatter(FuncFormatter(_plain))
        which.set_minor_formatter(NullFormatter())


def _hues(df: pd.DataFrame, hue: str, order: Sequence[str] | None) -> list[tuple[int, Any]]:
    """(style index, value) of each ``hue`` present, in ``order``: a name keeps its colour across
    figures even where another series is absent."""
    present = list(dict.fromkeys(df[hue]))
    names = list(order) + [h for h in sorted(present, key=str) if h not in set(order)] if order \
        else sorted(present, key=str)
    return [(i, h) for i, h in enumerate(names) if h in set(present)]


def _value_label(v: float, pct: bool) -> str:
    return "–" if not math.isfinite(v) else (f"{v:.1f}" if pct else f"{v:.3g}")


def bar_figure(df: pd.DataFrame, *, group: str, hue: str, title: str, ylabel: str,
               pct: bool = True, order: Sequence[str] | None = None,
               xlabel: str | None = None, styles: dict[str, dict[str, Any]] | None = None
               ) -> plt.Figure:
    """Grouped bars of the mean over seeds with 95 % interval whiskers, each labelled with its value.

    A bar of (near) zero height still shows its series: a thick line of its colour at the
    baseline and its value above it.
    """
    groups = list(dict.fromkeys(df[group]))
    hues = _hues(df, hue, order)
    n_bars = len(groups) * len(hues)
    fig, ax = plt.subplots(figsize=(max(5.2, 1.2 + 0.42 * n_bars), 3.6))
    width = 0.8 / max(len(hues), 1)
    scale = 100.0 if pct else 1.0
    means = df.groupby([hue, group])["value"].mean() * scale
    top = float(np.nanmax(np.abs(means.to_numpy()))) if len(means) else 1.0
    top = top if top > 0 else 1.0
    for j, (i, h) in enumerate(hues):
        sub = df[df[hue] == h].groupby(group)["value"]
        m = sub.mean().reindex(groups) * scale
        s = sub.agg(ci_half_width).reindex(groups).fillna(0) * scale
        st = (styles or {}).get(str(h)) or series_style(i)
        xs = np.arange(len(groups)) + (j - (len(hues) - 1) / 2) * width
        bars = ax.bar(xs, m.values, width, yerr=s.values if (s > 0).any() else None,
                      label=str(h), color=st["color"], hatch="//" if i >= 10 else None,
                      capsize=2, error_kw={"elinewidth": 0.8})
        for x0, v in zip(xs, m.values, strict=True):
            if math.isfinite(v) and abs(v) < 0.015 * top:
                ax.hlines(0, x0 - width / 2, x0 + width / 2, colors=[st["color"]], lw=3, zorder=3,
                          clip_on=False)
        ax.bar_label(bars, [_value_label(v, pct) for v in m.values], padding=3,
                     fontsize=7 if n_bars <= 12 else 6, rotation=0 if n_bars <= 8 else 90)
    crowded = max((len(str(g)) for g in groups), default=0) * len(groups) >= 48
    ax.set_xticks(range(len(groups)), [str(g) for g in groups], fontsize=8,
                  rotation=20 if crowded else 0, ha="right" if crowded else "center")
    ax.margins(y=0.18 if n_bars <= 8 else 0.3)
    if (means >= 0).all():
        ax.set_ylim(bottom=0)
    if pct and top <= 100:
        # Room for the value labels above a bar near 100 %, but no axis running on to 120 %.
        ax.set_ylim(top=min(ax.get_ylim()[1], 112.0))
    ax.axhline(0, color="black", lw=0.6)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    legend_outside(ax)
    return fig


def line_figure(df: pd.DataFrame, *, x: str, hue: str, title: str, ylabel: str,
                xlabel: str = EPS_LABEL, pct: bool = True, xfmt=fmt_eps255,
                hline: float | None = None, order: Sequence[str] | None = None,
                yscale: str = "linear", styles: dict[str, dict[str, Any]] | None = None
                ) -> plt.Figure:
    """Mean over seeds with a 95 % interval band, one line per ``hue`` value, x on a categorical
    axis.

    ``yscale='auto'``: log/symlog when the means span more than a factor 10
    (:func:`choose_yscale`). With a single x value there is no line to draw: one bar per series
    (:func:`bar_figure`), so that no series hides behind another's marker.
    """
    xs = sorted(df[x].unique())
    if len(xs) == 1:
        at = f"ε = {fmt_eps(xs[0])}" if x == "eps" else f"{xlabel} = {xfmt(xs[0])}"
        return bar_figure(df.assign(_at=at), group="_at", hue=hue, title=title, ylabel=ylabel,
                          pct=pct, order=order, styles=styles)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    hues = _hues(df, hue, order)
    scale = 100.0 if pct else 1.0
    pos = np.arange(len(xs))
    curves = []
    for i, h in hues:
        g = df[df[hue] == h].groupby(x)["value"]
        m, s = g.mean().reindex(xs) * scale, g.agg(ci_half_width).reindex(xs).fillna(0) * scale
        curves.append((i, h, m.to_numpy(dtype=float), s.to_numpy(dtype=float)))
    kind, kw = choose_yscale(np.concatenate([c[2] for c in curves])) if yscale == "auto" \
        else (yscale, {})
    floor = None
    if kind == "log":
        positive = np.concatenate([c[2][c[2] > 0] for c in curves])
        floor = float(positive.min()) / 2 if positive.size else None
    for i, h, m, s in curves:
        st = dict((styles or {}).get(str(h)) or series_style(i))
        ax.plot(pos, m, label=str(h), lw=1.6, **st)
        lo = m - s if floor is None else np.maximum(m - s, floor)
        ax.fill_between(pos, lo, m + s, alpha=0.12, color=st["color"], lw=0)
    if hline is not None and not (kind == "log" and hline <= 0):
        ax.axhline(hline, color="grey", lw=0.8, ls="--")
    apply_scale(ax, kind, kw)
    ax.set_xticks(pos, [xfmt(v) for v in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (f" ({kind} scale)" if kind != "linear" else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return fig


def line_plot(df: pd.DataFrame, *, path: Path, **kwargs: Any) -> Path:
    """:func:`line_figure` saved to ``path``."""
    return save_figure(line_figure(df, **kwargs), path)


def bar_plot(df: pd.DataFrame, *, path: Path, **kwargs: Any) -> Path:
    """:func:`bar_figure` saved to ``path``."""
    return save_figure(bar_figure(df, **kwargs), path)


@dataclass
class Finding:
    """One claim of a paper checked against our numbers.

    ``held``: True / False, or None when the run cannot decide it. Claims decided by a
    pre-specified test (:mod:`transferguard.stats`) carry their ``effect`` with its 95 %
    interval, the number of ``seeds`` and of test images, and ``inconclusive=True`` when the
    interval decides neither way (``held`` is then None, but the claim was checkable).
    """

    claim: str
    held: bool | None  # None: inconclusive, or could not be checked on this run
    evidence: str
    #: True for claims that compare attack success (used to re-check them at other budgets).
    about_attack: bool = False
    effect: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    seeds: int = 0
    n_images: int = 0
    inconclusive: bool = False

    @property
    def verdict(self) -> str:
        """``held``, ``did not hold``, ``inconclusive`` or ``not checkable``."""
        if self.held is True:
            return "held"
        if self.held is False:
            return "did not hold"
        return "inconclusive" if self.inconclusive else "not checkable"

    def markdown(self) -> str:
        mark = {"held": "**held**", "did not hold": "**did not hold**",
                "inconclusive": "**inconclusive**", "not checkable": "**not checked**"}[self.verdict]
        return f"- {mark} — {self.claim}  \n  Evidence: {self.evidence}"


#: A model this close to chance accuracy (in absolute accuracy) has not learnt its task: a claim
#: resting on it is not checkable (an untrained network's robustness is not robustness).
NEAR_CHANCE = 0.10


def claim_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """How many claims held, failed, were inconclusive or could not be checked, and in total.

    The one place that counts: the report's summary line and a run's ``run.json`` both use it.
    ``unchecked`` counts both undecided kinds; ``inconclusive`` the checkable ones among them.
    """
    held = sum(f.held is True for f in findings)
    failed = sum(f.held is False for f in findings)
    return {"held": held, "failed": failed, "unchecked": len(findings) - held - failed,
            "inconclusive": sum(f.verdict == "inconclusive" for f in findings),
            "total": len(findings)}


def findings_markdown(findings: Sequence[Finding]) -> str:
    """The summary line of :func:`claim_counts` followed by every finding with its evidence."""
    c = claim_counts(findings)
    head = f"{c['held']} of {c['total']} claims held on this run, {c['failed']} did not"
    if c["inconclusive"]:
        head += f", {c['inconclusive']} inconclusive"
    if c["unchecked"] - c["inconclusive"]:
        head += f", {c['unchecked'] - c['inconclusive']} could not be checked"
    return head + ".\n\n" + "\n".join(f.markdown() for f in findings)


@dataclass(frozen=True)
class Report:
    """What an experiment's report function returns: its Markdown and the findings it checked.

    The findings travel with the text so that callers (``reproduce``'s ``run.json``) count claims
    from them rather than from the Markdown.
    """

    markdown: str
    findings: list[Finding]

    def claims(self) -> dict[str, int]:
        """:func:`claim_counts` of the findings."""
        return claim_counts(self.findings)


def pct(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def markdown_to_html(md: str, out_dir: Path, title: str) -> str:
    """A small, dependency-free Markdown → self-contained HTML (images inlined as base64).

    Handles what our reports use: headings, paragraphs, lists, tables, images, bold, code.
    """
    body: list[str] = []
    lines = md.splitlines()
    i = 0

    def inline(t: str) -> str:
        t = html.escape(t)
        t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
        t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
        # [text](link): a relative link to a report's Markdown opens its HTML twin.
        t = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)",
                   lambda m: f'<a href="{re.sub(r"report[.]md$", "report.html", m.group(2))}">'
                             f"{m.group(1)}</a>", t)
        return t

    while i < len(lines):
        line = lines[i]
        img = re.match(r"!\[(.*?)\]\((.+?)\)", line.strip())
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif img:
            p = out_dir / img.group(2)
            if p.exists():
                data = base64.b64encode(p.read_bytes()).decode()
                body.append(f'<img alt="{html.escape(img.group(1))}" src="data:image/png;base64,{data}">')
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not re.match(r"^\|(\s*-+\s*\|)+$", lines[i].replace("---", "-")):
                    rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            if rows:
                head = "".join(f"<th>{inline(c)}</th>" for c in rows[0])
                rest = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>"
                               for r in rows[1:])
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rest}</tbody></table>")
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and (lines[i].startswith("- ") or lines[i].startswith("  ")):
                if lines[i].startswith("- "):
                    items.append(inline(lines[i][2:].rstrip()))
                else:
                    items[-1] += "<br>" + inline(lines[i].strip())
                i += 1
            body.append("<ul>" + "".join(f"<li>{it}</li>" for it in items) + "</ul>")
            continue
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
        i += 1
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto;line-height:1.45}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:90%}img{max-width:100%;height:auto;margin:4px;vertical-align:top}"
             "code{background:#f4f4f4}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(out_dir: Path, md: str, title: str) -> None:
    """Write ``report.md`` and the self-contained ``report.html`` next to it."""
    atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", markdown_to_html(md, out_dir, title))

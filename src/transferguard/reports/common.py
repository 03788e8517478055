"""Report building blocks: mean ± std tables, Markdown, line plots, findings, HTML.

Everything here reads a tidy results table (pandas DataFrame with the columns of
:data:`transferguard.experiments.base.RESULT_COLUMNS`) and nothing else.
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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .._io import atomic_write, atomic_write_text  # noqa: E402


def fmt_eps(eps: float) -> str:
    """ε in pixel units as a person reads it: 0.0313… → '8/255'."""
    if eps == 0:
        return "0"
    k = eps * 255
    if abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    frac = Fraction(eps).limit_denominator(1000)
    return f"{frac.numerator}/{frac.denominator}" if abs(float(frac) - eps) < 1e-9 else f"{eps:.4g}"


def mean_std(values: pd.Series, pct: bool = True) -> str:
    """'84.2 ± 1.3' (percent) over seeds; a single seed shows no ±."""
    v = values.dropna().astype(float)
    if v.empty:
        return "–"
    scale = 100.0 if pct else 1.0
    m = v.mean() * scale
    if len(v) == 1:
        return f"{m:.1f}" if pct else f"{m:.3f}"
    s = v.std(ddof=1) * scale
    return f"{m:.1f} ± {s:.1f}" if pct else f"{m:.3f} ± {s:.3f}"


def pivot_mean_std(df: pd.DataFrame, index: str, columns: str, pct: bool = True,
                   col_fmt=None) -> pd.DataFrame:
    """Pivot of mean ± std over seeds (strings), index × columns."""
    out = df.groupby([index, columns])["value"].apply(lambda s: mean_std(s, pct)).unstack(columns)
    if col_fmt is not None:
        out.columns = [col_fmt(c) for c in out.columns]
    return out


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


def line_plot(df: pd.DataFrame, *, x: str, hue: str, title: str, ylabel: str, path: Path,
              xlabel: str = "ε (pixel units)", pct: bool = True, xfmt=fmt_eps,
              hline: float | None = None, order: Sequence[str] | None = None) -> Path:
    """Mean over seeds with a ±std band, one line per ``hue`` value, x on a categorical axis."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    xs = sorted(df[x].unique())
    hues = [h for h in (order or sorted(df[hue].unique())) if h in set(df[hue])]
    scale = 100.0 if pct else 1.0
    for h in hues:
        g = df[df[hue] == h].groupby(x)["value"]
        m, s = g.mean().reindex(xs) * scale, g.std(ddof=1).reindex(xs).fillna(0) * scale
        pos = range(len(xs))
        ax.plot(pos, m.values, marker="o", label=str(h))
        ax.fill_between(pos, (m - s).values, (m + s).values, alpha=0.15)
    if hline is not None:
        ax.axhline(hline, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(xs)), [xfmt(v) for v in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def bar_plot(df: pd.DataFrame, *, group: str, hue: str, title: str, ylabel: str, path: Path,
             pct: bool = True, order: Sequence[str] | None = None) -> Path:
    """Grouped bars of mean ± std over seeds."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    groups = list(dict.fromkeys(df[group]))
    hues = [h for h in (order or sorted(df[hue].unique())) if h in set(df[hue])]
    width = 0.8 / max(len(hues), 1)
    scale = 100.0 if pct else 1.0
    for j, h in enumerate(hues):
        sub = df[df[hue] == h].groupby(group)["value"]
        m = sub.mean().reindex(groups) * scale
        s = sub.std(ddof=1).reindex(groups).fillna(0) * scale
        ax.bar([i + j * width for i in range(len(groups))], m.values, width, yerr=s.values,
               label=str(h), capsize=2)
    ax.set_xticks([i + width * (len(hues) - 1) / 2 for i in range(len(groups))], groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


@dataclass
class Finding:
    """One claim of a paper checked against our numbers."""

    claim: str
    held: bool | None  # None: could not be checked on this run
    evidence: str
    #: True for claims that compare attack success (used to re-check them at other budgets).
    about_attack: bool = False

    def markdown(self) -> str:
        mark = {True: "**held**", False: "**did not hold**", None: "**not checked**"}[self.held]
        return f"- {mark} — {self.claim}  \n  Evidence: {self.evidence}"


def claim_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """How many claims held, failed, could not be checked, and in total.

    The one place that counts: the report's summary line and a run's ``run.json`` both use it.
    """
    held = sum(f.held is True for f in findings)
    failed = sum(f.held is False for f in findings)
    return {"held": held, "failed": failed, "unchecked": len(findings) - held - failed,
            "total": len(findings)}


def findings_markdown(findings: Sequence[Finding]) -> str:
    """The summary line of :func:`claim_counts` followed by every finding with its evidence."""
    c = claim_counts(findings)
    head = f"{c['held']} of {c['total']} claims held on this run, {c['failed']} did not"
    if c["unchecked"]:
        head += f", {c['unchecked']} could not be checked"
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
             "font-size:90%}img{max-width:48%;margin:4px}code{background:#f4f4f4}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(out_dir: Path, md: str, title: str) -> None:
    """Write ``report.md`` and the self-contained ``report.html`` next to it."""
    atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", markdown_to_html(md, out_dir, title))

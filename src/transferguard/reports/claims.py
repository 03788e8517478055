"""A paper's claims as tests fixed before the run, decided from a results table.

:class:`ClaimTester` turns rows into counts — every rate is k of n test images: clean and
adversarial accuracy of ``n_images``, an attack success rate of the correctly classified ones
(``n_correct``, recorded or ``clean_acc × n_images``) — keyed by (seed, cell), and decides one
claim at a time: its statistic gets a two-level bootstrap interval over seeds and images
(:func:`transferguard.stats.bootstrap_stat`) and its verdict from
:func:`transferguard.stats.decide` with the direction and margin written in the claim. A claim
resting on a model near chance (:data:`~transferguard.reports.common.NEAR_CHANCE`) or still
improving when its budget ended (the ``plateaued`` column), or on an ancestor or attack source
that was (``upstream_unfinished``), is not checkable, whatever its interval says; so is one
whose table has no image counts (a run older than these tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..results import CLEAN, Metric
from ..stats import Counts, Effect, bootstrap_stat, decide
from .common import NEAR_CHANCE, Finding, fmt_eps, pct

#: A model and the rows of one of its rates: ``(method, {"metric": ..., "attack": ..., "vary": ...})``.
Rate = tuple[str, dict[str, Any]]
Statistic = Callable[[dict[str, np.ndarray]], float]


def diff(r: dict[str, np.ndarray]) -> float:
    """Mean over keys of rate ``a`` − rate ``b``: the usual effect."""
    return float(np.mean(r["a"] - r["b"]))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (nan for fewer than 3 points or a constant side)."""
    if len(a) < 3:
        return math.nan
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


class ClaimTester:
    """Pre-specified tests of one results table (see the module doc).

    ``eps``: the budget at which attack rows are read (None: every attack row). ``cell``: the
    column that splits a seed into cells (a target domain), or None when the claim's rates come
    from different tasks (an ablation's settings) and a seed is one cell. ``names``: how methods
    are written in the evidence.
    """

    def __init__(self, df: pd.DataFrame, *, eps: float | None = None, cell: str | None = None,
                 names: Mapping[str, str] | None = None) -> None:
        self.df, self.eps, self.cell, self.names = df, eps, cell, dict(names or {})

    def rows(self, method: str, where: Mapping[str, Any]) -> pd.DataFrame:
        """The rows of one rate of ``method``: metric, attack (at :attr:`eps`), vary."""
        d = self.df
        attack = where.get("attack", CLEAN)
        sub = d[(d.method == method) & (d.metric == where.get("metric", Metric.CLEAN_ACC))
                & (d.attack == attack)]
        if attack != CLEAN and self.eps is not None:
            sub = sub[np.isclose(sub.eps.astype(float), self.eps)]
        if "vary" in where:
            sub = sub[sub["vary"] == where["vary"]]
        return sub

    def _key(self, row: Any) -> tuple[int, str]:
        return int(row.seed), str(getattr(row, self.cell)) if self.cell else ""

    def counts(self, method: str, where: Mapping[str, Any]) -> Counts:
        """``{(seed, cell): (k, n)}`` of one rate; empty without image counts (an old run)."""
        if where.get("metric") == Metric.ASR:
            return self._asr_counts(method, where)
        sub = self.rows(method, where)
        if "n_images" not in sub.columns:
            return {}
        return {self._key(r): (round(float(r.value) * int(r.n_images)), int(r.n_images))
                for r in sub.itertuples() if pd.notna(r.n_images) and pd.notna(r.value)}

    def _asr_counts(self, method: str, where: Mapping[str, Any]) -> Counts:
        """Fooled of correctly classified: the recorded counts, or ASR × (clean × n_images)."""
        recorded = {m: {self._key(r): int(r.value)
                        for r in self.rows(method, {**where, "metric": m}).itertuples()}
                    for m in (Metric.N_FOOLED, Metric.N_CORRECT)}
        if recorded[Metric.N_CORRECT]:
            return {k: (v, recorded[Metric.N_CORRECT][k])
                    for k, v in recorded[Metric.N_FOOLED].items() if k in recorded[Metric.N_CORRECT]}
        vary = {k: v for k, v in where.items() if k == "vary"}
        correct = {k: kc for k, (kc, _) in self.counts(method, {**vary, "metric": Metric.CLEAN_ACC}).items()}
        return {self._key(r): (round(float(r.value) * correct[self._key(r)]),
                               correct[self._key(r)])
                for r in self.rows(method, where).itertuples()
                if self._key(r) in correct and pd.notna(r.value)}

    def values(self, method: str, where: Mapping[str, Any]) -> dict[tuple[int, str], float]:
        """``{(seed, cell): value}`` of a measured number (a distance, a loss)."""
        return {self._key(r): float(r.value) for r in self.rows(method, where).itertuples()
                if pd.notna(r.value)}

    def label(self, method: str, where: Mapping[str, Any] | None = None) -> str:
        vary = (where or {}).get("vary")
        return self.names.get(method, method) + (f" at {vary}" if vary is not None else "")

    def _clean_rows(self, models: list[Rate]) -> list[tuple[str, pd.DataFrame]]:
        """``(label, clean-accuracy rows)`` of each distinct model (method, vary) behind a claim."""
        out = []
        for method, vary in dict.fromkeys((m, w.get("vary")) for m, w in models):
            base = {} if vary is None else {"vary": vary}
            out.append((self.label(method, base),
                        self.rows(method, {**base, "metric": Metric.CLEAN_ACC})))
        return out

    def weak_models(self, models: list[Rate]) -> list[str]:
        """Why the models behind a claim cannot carry it (near chance, still improving)."""
        why = []
        for label, clean in self._clean_rows(models):
            if clean.empty:
                continue
            n_classes = clean["n_classes"].iloc[0] if "n_classes" in clean.columns else None
            chance = 1 / float(n_classes) if n_classes is not None and pd.notna(n_classes) \
                else math.nan
            acc = float(clean.value.mean())
            if acc < chance + NEAR_CHANCE:
                why.append(f"{label}'s clean accuracy {pct(acc)} is within "
                           f"{100 * NEAR_CHANCE:.0f} points of chance ({pct(chance)})")
        return why + self.unfinished_models(models)

    def unfinished_models(self, models: list[Rate]) -> list[str]:
        """Why the models behind a claim cannot carry it because training had not finished: a
        model still improving when its budget ended (``plateaued``), or a model it rests on
        that was (``upstream_unfinished``)."""
        why = []
        for label, clean in self._clean_rows(models):
            if "plateaued" in clean.columns:
                still = clean[clean["plateaued"].astype(str) == "False"]
                if len(still):
                    seeds = ", ".join(sorted({str(s) for s in still.seed}))
                    why.append(f"{label} was still improving when its budget ended "
                               f"(seed {seeds})")
        return why + self._weak_upstream(models)

    def _weak_upstream(self, models: list[Rate]) -> list[str]:
        """Why a rate's lineage cannot carry it: a model it rests on (an ancestor, the model an
        attack was crafted on) was still improving (the ``upstream_unfinished`` column)."""
        if "upstream_unfinished" not in self.df.columns:
            return []
        found: dict[str, tuple[dict[str, None], set[str]]] = {}
        for method, where in models:
            for r in self.rows(method, where).itertuples():
                names = r.upstream_unfinished
                if isinstance(names, str) and names:
                    labels, seeds = found.setdefault(names, ({}, set()))
                    labels[self.label(method, where)] = None
                    seeds.add(str(r.seed))
        return [f"{names}, which {' and '.join(labels)} rest{'s' if len(labels) == 1 else ''} "
                f"on, was still improving when its budget ended (seed {', '.join(sorted(seeds))})"
                for names, (labels, seeds) in found.items()]

    def effect(self, stat: Statistic, rates: Mapping[str, Rate],
               values: Mapping[str, Rate] | None = None) -> Effect | None:
        """``stat`` of the named rates (and measured values) with its 95 % interval."""
        return bootstrap_stat({k: self.counts(m, w) for k, (m, w) in rates.items()}, stat,
                              values={k: self.values(m, w) for k, (m, w) in (values or {}).items()})

    def why_no_effect(self, rates: Mapping[str, Rate]) -> str:
        """Why :meth:`effect` gave nothing: rates without image counts (a run older than the
        tested claims), or a rate at 0 where the statistic divides by it (γ when the white-box
        attack fooled every test image of a seed)."""
        counts = [(self.label(m, w), w, self.counts(m, w)) for m, w in rates.values()]
        old = [label for label, _, c in counts if not c]
        if old:
            return (f"no image counts for {', '.join(dict.fromkeys(old))} (a run older than the "
                    "tested claims)")
        zeros = []
        for label, w, c in counts:
            seeds = sorted({s for (s, _), (k, _n) in c.items() if k == 0})
            if seeds:
                what = f"{w.get('attack', CLEAN)} {w.get('metric', Metric.CLEAN_ACC)}"
                zeros.append(f"{label}'s {what} is 0 at seed {', '.join(map(str, seeds))}")
        if zeros:
            return ("the effect is undefined (a rate it may divide by is 0): "
                    + "; ".join(zeros))
        return "the effect is undefined on these models' rates"

    def claim(self, text: str, claimed: str, stat: Statistic, rates: Mapping[str, Rate],
              what: str, *, margin: float = 0.0, ratio: bool = False,
              values: Mapping[str, Rate] | None = None, about_attack: bool = False) -> Finding:
        """One claim: ``stat`` of the named rates, claimed ``claimed`` ('<', '>' or '≈') with
        ``margin`` (see :func:`transferguard.stats.decide`). ``what`` names the effect in the
        evidence; ``ratio``: the effect is a plain number (γ, ρ, a loss), not points."""
        weak = self.weak_models([*rates.values(), *(values or {}).values()])
        if weak:
            return Finding(text, None, "not checkable: " + "; ".join(weak),
                           about_attack=about_attack)
        eff = self.effect(stat, rates, values)
        if eff is None:
            return Finding(text, None, "not checkable: " + self.why_no_effect(rates),
                           about_attack=about_attack)
        verdict = decide(eff.low, eff.high, claimed=claimed, margin=margin)
        attacked = any(w.get("attack", CLEAN) != CLEAN for _, w in rates.values())
        where = f" at ε={fmt_eps(self.eps)}" if attacked and self.eps is not None else ""
        value = (f"{eff.effect:+.3f} (95 % CI {eff.low:+.3f} to {eff.high:+.3f}; {eff.seeds} "
                 f"seed(s), {eff.n_images} images)") if ratio else eff.text()
        return Finding(text, {"held": True, "did not hold": False}.get(verdict),
                       f"{what}{where}: {value}", about_attack=about_attack, effect=eff.effect,
                       ci_low=eff.low, ci_high=eff.high, seeds=eff.seeds,
                       n_images=eff.n_images, inconclusive=verdict == "inconclusive")

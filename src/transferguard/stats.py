"""Intervals for the numbers a claim rests on: rates k/n, gaps between rates, and effects over
seeds — the one place where transferguard turns counts into 95 % intervals and verdicts.

* :func:`wilson` — the Wilson score interval of one proportion (scipy's ``binomtest``);
* :func:`gap_interval` — Newcombe's hybrid score interval of a difference of two proportions;
* :func:`bootstrap_effect` — a two-level (hierarchical) bootstrap of a mean difference of rates
  over seeds and test images: seeds are resampled with replacement (the same seeds for both
  sides, since one seed fixes one source model and one data split for every method), then each
  resampled cell's rate is redrawn from its images, ``Beta(k + ½, n − k + ½)`` (the Jeffreys
  posterior of k fooled out of n: unlike a plain binomial redraw it does not collapse to a
  zero-width interval when k = 0 or k = n; the interval is widened to hold the observed effect,
  as the Jeffreys interval's bound is 0 at k = 0). Both sides are redrawn independently, which is
  conservative for attacks evaluated on the same images;
* :func:`bootstrap_stat` — the same two-level bootstrap for any statistic of several rates (γ,
  a difference of differences, a minimum over settings); :func:`bootstrap_effect` is its
  difference-of-two case;
* :func:`bootstrap_values` — seeds, then images, for a statistic of per-image values (the median
  of input-gradient norms);
* :func:`decide` — the pre-specified verdict from an interval: ``held`` when the whole interval
  lies on the claimed side (or, for an equivalence claim, inside ±margin), ``did not hold`` when
  it lies wholly on the other side (outside the margin), else ``inconclusive``.

numpy and scipy only (no torch), so reports import it cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
#: Bootstrap replicates and the fixed seed of their generator: the same counts give the same
#: interval on every machine and every run.
N_BOOT = 4000
BOOT_SEED = 20261130

HELD, FAILED, INCONCLUSIVE, NOT_CHECKABLE = "held", "did not hold", "inconclusive", "not checkable"
VERDICTS = (HELD, FAILED, INCONCLUSIVE, NOT_CHECKABLE)


def wilson(k: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of the proportion k/n (``(nan, nan)`` when n = 0)."""
    if n <= 0:
        return math.nan, math.nan
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Rate:
    """A rate as k of n with its 95 % Wilson interval."""

    k: int
    n: int
    low: float
    high: float

    @classmethod
    def of(cls, k: int, n: int) -> Rate:
        return cls(int(k), int(n), *wilson(int(k), int(n)))

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else math.nan

    def text(self) -> str:
        from .reports.common import pct

        return (f"{pct(self.value)} ({self.k}/{self.n}, 95 % CI {pct(self.low)}–{pct(self.high)})"
                if self.n else "n/a (no correctly classified image)")


def gap_interval(a: Rate, b: Rate) -> tuple[float, float]:
    """Newcombe's hybrid score 95 % interval of a − b from the two Wilson intervals."""
    p1, p2 = a.value, b.value
    d = p1 - p2
    lo = d - math.sqrt((p1 - a.low) ** 2 + (b.high - p2) ** 2)
    hi = d + math.sqrt((a.high - p1) ** 2 + (p2 - b.low) ** 2)
    return lo, hi


#: Counts of one method: ``{(seed, cell): (k, n)}`` where a cell is e.g. a target domain.
Counts = Mapping[tuple[int, str], tuple[int, int]]


@dataclass(frozen=True)
class Effect:
    """A statistic of rates over seeds and cells with its 95 % bootstrap interval.

    ``n_images``: the test images behind it — the largest count among the rates it combines
    (the rates of one claim are measured on the same test images, so they are not summed).
    """

    effect: float
    low: float
    high: float
    seeds: int
    n_images: int

    def text(self, unit: str = " points") -> str:
        return (f"{100 * self.effect:+.1f}{unit} (95 % CI {100 * self.low:+.1f} to "
                f"{100 * self.high:+.1f}; {self.seeds} seed(s), {self.n_images} images)")


def bootstrap_effect(a: Counts, b: Counts | None = None, *, n_boot: int = N_BOOT,
                     seed: int = BOOT_SEED) -> Effect | None:
    """Mean over (seed, cell) of rate(a) − rate(b) (or of rate(a) alone when ``b`` is None),
    with a hierarchical bootstrap 95 % interval (see the module doc).

    Only (seed, cell) pairs present on both sides, with n > 0, count. Returns ``None`` when none
    is left.
    """
    if b is None:
        return bootstrap_stat({"a": a}, lambda r: np.mean(r["a"]), n_boot=n_boot, seed=seed)
    return bootstrap_stat({"a": a, "b": b}, lambda r: np.mean(r["a"] - r["b"]), n_boot=n_boot,
                          seed=seed)


#: A statistic of rates: ``{name: rate per resampled (seed, cell)}`` → one number.
Statistic = Callable[[dict[str, np.ndarray]], float]


def bootstrap_stat(rates: Mapping[str, Counts], stat: Statistic, *,
                   values: Mapping[str, Mapping[tuple[int, str], float]] | None = None,
                   n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> Effect | None:
    """Any statistic of several rates (a difference, a γ, a difference of differences, a minimum
    over settings, a rank correlation) with its hierarchical bootstrap 95 % interval.

    ``rates`` maps names to counts over the same (seed, cell) keys; ``values`` (optional) maps
    more names to one measured number per key (a distance, a loss), which is resampled with its
    seed but not redrawn. ``stat`` receives, for each name, the array over the (resampled) keys
    in one fixed order and returns a number. Seeds are resampled with replacement (the same
    seeds for every name), then every rate is redrawn from ``Beta(k + ½, n − k + ½)``,
    independently per name (see the module doc). Only keys present under every name (with n > 0
    for rates) count; ``None`` when none is left or the observed statistic is not finite.
    """
    values = values or {}
    key_sets = [set(rates[m]) for m in rates] + [set(values[m]) for m in values]
    if not key_sets:
        return None
    keys = sorted(set.intersection(*key_sets))
    keys = [k for k in keys if all(rates[m][k][1] > 0 for m in rates)
            and all(math.isfinite(values[m][k]) for m in values)]
    if not keys:
        return None
    seeds = sorted({s for s, _ in keys})
    index = {k: i for i, k in enumerate(keys)}
    cells = [np.array([index[k] for k in keys if k[0] == s]) for s in seeds]
    kn = {m: (np.array([rates[m][k][0] for k in keys], float),
              np.array([rates[m][k][1] for k in keys], float)) for m in rates}
    fixed = {m: np.array([values[m][k] for k in keys], float) for m in values}
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = float(stat({**{m: k / n for m, (k, n) in kn.items()}, **fixed}))
    if not math.isfinite(effect):
        return None
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for r in range(n_boot):
        rows = np.concatenate([cells[j] for j in rng.integers(0, len(seeds), len(seeds))])
        drawn = {m: rng.beta(k[rows] + 0.5, n[rows] - k[rows] + 0.5) for m, (k, n) in kn.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            draws[r] = stat({**drawn, **{m: v[rows] for m, v in fixed.items()}})
    n_images = int(max((n.sum() for _, n in kn.values()), default=0))
    return _interval(effect, draws[np.isfinite(draws)], len(seeds), n_images)


def bootstrap_values(a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray],
                     stat: Callable[[np.ndarray], float] = np.median, *, n_boot: int = N_BOOT,
                     seed: int = BOOT_SEED) -> Effect | None:
    """Mean over seeds of ``stat(a) − stat(b)`` for per-image values (e.g. median gradient norms),
    with a hierarchical bootstrap 95 % interval: resample seeds, then images within each."""
    seeds = sorted(s for s in set(a) & set(b) if len(a[s]) and len(b[s]))
    if not seeds:
        return None
    va = [np.asarray(a[s], float) for s in seeds]
    vb = [np.asarray(b[s], float) for s in seeds]
    effect = float(np.mean([stat(x) - stat(y) for x, y in zip(va, vb, strict=True)]))
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for r in range(n_boot):
        picks = rng.integers(0, len(seeds), len(seeds))
        draws[r] = np.mean([stat(rng.choice(va[j], len(va[j]))) - stat(rng.choice(vb[j], len(vb[j])))
                            for j in picks])
    return _interval(effect, draws, len(seeds), int(max(sum(map(len, va)), sum(map(len, vb)))))


def _interval(effect: float, draws: np.ndarray, seeds: int, n_images: int) -> Effect:
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    # Jeffreys draws never reach a boundary rate (k = 0 draws are all > 0): the interval is
    # widened to hold the observed effect, as the Jeffreys interval sets its bound to 0 at k = 0.
    low, high = min(float(low), effect), max(float(high), effect)
    return Effect(effect, float(low), float(high), seeds, n_images)


def decide(low: float, high: float, *, claimed: str, margin: float = 0.0) -> str:
    """The verdict of a claim from its effect's interval (fixed before the run).

    ``claimed``: ``"<"`` (the effect is negative: beyond ``-margin``), ``">"`` (beyond
    ``+margin``) or ``"≈"`` (equivalence: the whole interval inside ±``margin``; it did not hold
    when the interval lies wholly outside).
    """
    if math.isnan(low) or math.isnan(high):
        return NOT_CHECKABLE
    if claimed == "<":
        return HELD if high < -margin else FAILED if low >= -margin else INCONCLUSIVE
    if claimed == ">":
        return HELD if low > margin else FAILED if high <= margin else INCONCLUSIVE
    if claimed == "≈":
        if -margin <= low and high <= margin:
            return HELD
        return FAILED if high < -margin or low > margin else INCONCLUSIVE
    raise ValueError(f"claimed must be '<', '>' or '≈', got {claimed!r}")

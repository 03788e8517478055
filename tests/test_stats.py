"""Intervals and verdicts of :mod:`transferguard.stats`, checked against closed forms and
simulation (numpy's seeded generator: the same draws on every machine)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferguard.stats import (
    FAILED,
    HELD,
    INCONCLUSIVE,
    NOT_CHECKABLE,
    bootstrap_effect,
    bootstrap_stat,
    bootstrap_values,
    decide,
    wilson,
)


def test_effect_is_the_mean_difference_of_rates_and_the_run_is_deterministic():
    a = {(0, "m"): (30, 100), (1, "m"): (36, 120), (0, "u"): (5, 50), (1, "u"): (9, 60)}
    b = {(0, "m"): (10, 100), (1, "m"): (12, 120), (0, "u"): (1, 50), (1, "u"): (3, 60),
         (2, "m"): (5, 10)}  # seed 2 has no counterpart in ``a``: ignored
    e = bootstrap_effect(a, b)
    exact = np.mean([0.3 - 0.1, 0.3 - 0.1, 0.1 - 0.02, 0.15 - 0.05])
    assert e.effect == pytest.approx(exact, abs=1e-12)
    # both sides are measured on the same 330 test images: counted once, not summed
    assert e.seeds == 2 and e.n_images == 100 + 120 + 50 + 60
    assert e.low < e.effect < e.high
    assert bootstrap_effect(a, b) == e  # fixed generator seed: same interval every run
    one = bootstrap_effect(a)
    assert one.effect == pytest.approx(np.mean([0.3, 0.3, 0.1, 0.15]))
    assert 0 < one.low < one.effect < one.high < 1


def test_interval_narrows_with_more_images_and_is_honest_at_zero_counts():
    small = bootstrap_effect({(0, "d"): (20, 100)}, {(0, "d"): (10, 100)})
    large = bootstrap_effect({(0, "d"): (2000, 10000)}, {(0, "d"): (1000, 10000)})
    assert (large.high - large.low) < (small.high - small.low) / 5
    assert large.low < 0.1 < large.high
    zero = bootstrap_effect({(0, "d"): (0, 40)}, {(0, "d"): (0, 40)})
    assert zero.effect == 0.0 and zero.low < 0 < zero.high  # no zero-width interval at k = 0
    assert bootstrap_effect({(0, "d"): (3, 0)}, {(0, "d"): (1, 5)}) is None


def test_seed_to_seed_spread_widens_the_interval():
    """Same pooled counts, but split over seeds that disagree: the seed level must show."""
    agree = {(s, "d"): (25, 100) for s in range(4)}
    spread = {(0, "d"): (5, 100), (1, "d"): (45, 100), (2, "d"): (10, 100), (3, "d"): (40, 100)}
    zero = {(s, "d"): (0, 100) for s in range(4)}
    wa, ws = bootstrap_effect(agree, zero), bootstrap_effect(spread, zero)
    assert wa.effect == pytest.approx(ws.effect)
    assert (ws.high - ws.low) > 2 * (wa.high - wa.low)


def test_single_seed_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    p, q, n, hits, trials = 0.3, 0.2, 150, 0, 200
    for _ in range(trials):
        ka, kb = int(rng.binomial(n, p)), int(rng.binomial(n, q))
        e = bootstrap_effect({(0, "d"): (ka, n)}, {(0, "d"): (kb, n)}, n_boot=600)
        hits += e.low <= p - q <= e.high
    assert 0.90 <= hits / trials <= 0.995


@pytest.mark.parametrize(("low", "high", "claimed", "margin", "verdict"), [
    (-0.20, -0.05, "<", 0.0, HELD),
    (-0.20, 0.01, "<", 0.0, INCONCLUSIVE),
    (0.00, 0.20, "<", 0.0, FAILED),
    (0.05, 0.12, "<", -0.15, HELD),       # "less than 15 points above": high < 0.15
    (0.10, 0.20, "<", -0.15, INCONCLUSIVE),
    (0.16, 0.30, "<", -0.15, FAILED),
    (0.01, 0.30, ">", 0.0, HELD),
    (-0.02, 0.30, ">", 0.0, INCONCLUSIVE),
    (-0.30, -0.01, ">", 0.0, FAILED),
    (-0.04, 0.03, "≈", 0.05, HELD),
    (-0.04, 0.08, "≈", 0.05, INCONCLUSIVE),
    (0.06, 0.20, "≈", 0.05, FAILED),
    (math.nan, 0.2, "<", 0.0, NOT_CHECKABLE),
])
def test_verdict_follows_the_interval(low, high, claimed, margin, verdict):
    assert decide(low, high, claimed=claimed, margin=margin) == verdict


def test_decide_rejects_an_unknown_direction():
    with pytest.raises(ValueError):
        decide(0.0, 1.0, claimed="!=")


def test_wilson_is_scipys_score_interval():
    lo, hi = wilson(5, 36)
    z = 1.959963984540054
    p, n = 5 / 36, 36
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-9)


def test_bootstrap_stat_generalises_the_difference_and_computes_gamma():
    a = {(0, ""): (30, 100), (1, ""): (36, 120), (2, ""): (20, 90)}
    b = {(0, ""): (10, 100), (1, ""): (12, 120), (2, ""): (15, 90)}
    # the difference of two rates is bootstrap_effect, draw for draw
    diff = bootstrap_stat({"a": a, "b": b}, lambda r: np.mean(r["a"] - r["b"]))
    assert diff == bootstrap_effect(a, b)
    # γ = (black − white) / white, averaged over seeds, computed by hand
    gamma = bootstrap_stat({"b": b, "w": a}, lambda r: np.mean((r["b"] - r["w"]) / r["w"]))
    exact = np.mean([(0.1 - 0.3) / 0.3, (0.1 - 0.3) / 0.3, (15 / 90 - 20 / 90) / (20 / 90)])
    assert gamma.effect == pytest.approx(exact, abs=1e-12)
    assert gamma.low <= gamma.effect <= gamma.high and gamma.seeds == 3
    # an undefined statistic (white-box accuracy 0: γ divides by zero) is not an effect
    zero = {k: (0, n) for k, (_, n) in a.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        assert bootstrap_stat({"b": b, "w": zero},
                              lambda r: np.mean((r["b"] - r["w"]) / r["w"])) is None
    # keys missing under one name are dropped for all
    assert bootstrap_stat({"a": a, "b": {(0, ""): (10, 100)}},
                          lambda r: np.mean(r["a"] - r["b"])).seeds == 1


def test_bootstrap_values_resamples_seeds_then_images():
    rng = np.random.default_rng(0)
    a = {s: rng.normal(1.0, 0.1, 300) for s in range(3)}
    b = {s: rng.normal(2.0, 0.1, 300) for s in range(3)}
    e = bootstrap_values(a, b, n_boot=500)
    exact = np.mean([np.median(a[s]) - np.median(b[s]) for s in range(3)])
    assert e.effect == pytest.approx(exact, abs=1e-12)
    assert e.low < e.effect < e.high < 0 and e.seeds == 3 and e.n_images == 900
    assert bootstrap_values(a, {}) is None

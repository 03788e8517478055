"""Claims as tests fixed before the run: counts from rows, verdicts from intervals, and the models
a claim may not rest on (near chance, still improving, no image counts)."""

from __future__ import annotations

import pandas as pd
import pytest

from transferguard.papers.paper1 import report as r1
from transferguard.papers.paper2 import report as r2
from transferguard.reports.claims import ClaimTester, diff


def _rows(clean: dict[str, list[float]], n: int = 400, **extra) -> pd.DataFrame:
    """Clean-accuracy rows of several methods over seeds (one value per seed)."""
    return pd.DataFrame([{"experiment": "t", "task": "d", "method": m, "seed": s, "attack": "none",
                          "eps": 0.0, "metric": "clean_acc", "value": v, "n_images": n,
                          "n_classes": 10, **extra}
                         for m, vals in clean.items() for s, v in enumerate(vals)])


def test_counts_are_k_of_n_images_and_asr_of_the_correct_ones():
    df = _rows({"ft": [0.9, 0.8]})
    df = pd.concat([df, pd.DataFrame([{**df.iloc[0].to_dict(), "attack": "feature",
                                       "eps": 8 / 255, "metric": "asr", "value": 0.25}])])
    t = ClaimTester(df, cell="task")
    assert t.counts("ft", {"metric": "clean_acc"}) == {(0, "d"): (360, 400), (1, "d"): (320, 400)}
    # ASR is a fraction of the 360 correctly classified images of seed 0
    assert t.counts("ft", {"metric": "asr", "attack": "feature"}) == {(0, "d"): (90, 360)}
    # recorded counts win over the derived ones
    rec = pd.concat([df, pd.DataFrame([
        {**df.iloc[0].to_dict(), "attack": "feature", "eps": 8 / 255, "metric": m, "value": v}
        for m, v in (("n_fooled", 91), ("n_correct", 359))])])
    assert ClaimTester(rec, cell="task").counts("ft", {"metric": "asr", "attack": "feature"}) \
        == {(0, "d"): (91, 359)}
    # an old table without image counts gives no counts: the claim is not checkable
    old = df.drop(columns=["n_images"])
    assert ClaimTester(old).counts("ft", {"metric": "clean_acc"}) == {}


@pytest.mark.parametrize(("a", "b", "verdict"), [
    ([0.90, 0.91, 0.89], [0.70, 0.71, 0.69], "held"),
    ([0.70, 0.71, 0.69], [0.90, 0.91, 0.89], "did not hold"),
    ([0.80, 0.70, 0.90], [0.80, 0.81, 0.79], "inconclusive"),
])
def test_verdict_follows_the_interval(a, b, verdict):
    t = ClaimTester(_rows({"a": a, "b": b}))
    f = t.claim("a beats b", ">", diff, {"a": ("a", {}), "b": ("b", {})}, "a − b")
    assert f.verdict == verdict and f.seeds == 3 and f.n_images == 1200
    assert f.ci_low <= f.effect <= f.ci_high


def test_equivalence_needs_the_whole_interval_inside_the_margin():
    t = ClaimTester(_rows({"a": [0.855] * 3, "b": [0.737] * 3}, n=300))
    far = t.claim("comparable", "≈", diff, {"a": ("a", {}), "b": ("b", {})}, "a − b", margin=0.03)
    assert far.verdict == "did not hold"  # 85.5 % vs 73.7 % is not "within 3 points"
    t = ClaimTester(_rows({"a": [0.90] * 3, "b": [0.895] * 3}, n=20_000))
    near = t.claim("comparable", "≈", diff, {"a": ("a", {}), "b": ("b", {})}, "a − b", margin=0.03)
    assert near.verdict == "held"


def test_a_claim_on_a_model_near_chance_or_still_improving_is_not_checkable():
    near_chance = ClaimTester(_rows({"reno": [0.9] * 3, "re-training": [0.17, 0.2, 0.18]}))
    f = near_chance.claim("reno beats re-training", ">", diff,
                          {"a": ("reno", {}), "b": ("re-training", {})}, "a − b")
    assert f.verdict == "not checkable" and "within 10 points of chance" in f.evidence
    climbing = _rows({"a": [0.9] * 3, "b": [0.5] * 3})
    climbing["plateaued"] = [True, True, True, True, False, True]
    f = ClaimTester(climbing).claim("a beats b", ">", diff, {"a": ("a", {}), "b": ("b", {})}, "")
    assert f.verdict == "not checkable" and "still improving" in f.evidence and "seed 1" in f.evidence
    climbing["plateaued"] = None  # unknown (models stored before the flag): not held against it
    assert ClaimTester(climbing).claim("a beats b", ">", diff, {"a": ("a", {}), "b": ("b", {})},
                                       "").verdict == "held"


def test_paper_reports_without_image_counts_say_not_checkable():
    old = pd.DataFrame([{"experiment": "t", "task": "M→U", "method": m, "arch": "dtn", "seed": 0,
                         "attack": "none", "eps": 0.0, "metric": "clean_acc", "value": v}
                        for m, v in (("scratch", 0.8), ("ft", 0.9))])
    (f,) = r1.check_findings(old)
    assert f.verdict == "not checkable" and "no image counts" in f.evidence
    p2 = old.replace({"scratch": "re-training", "ft": "fine-tune"})
    found = r2.check_findings(p2, "syn", ["fine-tune", "re-training"])
    assert {f.verdict for f in found} == {"not checkable"}


def test_an_undefined_gamma_says_which_white_box_rate_is_zero():
    """γ = (a_b − a_w) / a_w has no value when white-box FGSM fooled every test image of a seed
    (fig9's WRN-16-2 Scratch at 16/255): not checkable, and the evidence names the rate."""
    rows = []
    for m, wb in (("ft", [0.40, 0.45, 0.42]), ("scratch", [0.010, 0.003, 0.0])):
        for s in range(3):
            base = {"experiment": "t", "task": "Syn→M", "method": m, "arch": "dtn", "seed": s,
                    "n_images": 1000, "n_classes": 10}
            rows += [{**base, "attack": "none", "eps": 0.0, "metric": "clean_acc", "value": 0.95},
                     {**base, "attack": "fgsm-white", "eps": 16 / 255, "metric": "adv_acc",
                      "value": wb[s]},
                     {**base, "attack": "fgsm-transfer", "eps": 16 / 255, "metric": "adv_acc",
                      "value": 0.7}]
    found = {f.claim: f for f in r1.check_findings(pd.DataFrame(rows))}
    f = found["[Syn→M] γ of FT is below γ of Scratch (Fig. 5)"]
    assert f.verdict == "not checkable"
    assert "Scratch's fgsm-white adv_acc is 0 at seed 2" in f.evidence
    assert "no image counts" not in f.evidence
    # FT's own γ is defined in every seed: decided
    assert found["[Syn→M] γ of FT drops below 0 at the paper's largest ε (Model A's examples "
                 "beat white-box ones; the paper saw this on (M, U, S))"].verdict == "did not hold"


def test_a_claim_resting_on_an_unfinished_ancestor_or_attack_source_is_not_checkable():
    df = _rows({"a": [0.9] * 3, "b": [0.5] * 3}, upstream_unfinished="")
    black = df.assign(attack="fgsm-transfer", eps=16 / 255, metric="adv_acc")
    # Model A (the source of b, and the model the black-box attack was crafted on) was still
    # improving in seed 2: only b's black-box rate rests on it, its clean rate does not
    black.loc[(black.method == "b") & (black.seed == 2), "upstream_unfinished"] = "A scratch syn"
    t = ClaimTester(pd.concat([df, black], ignore_index=True), eps=16 / 255)
    clean = t.claim("a beats b", ">", diff, {"a": ("a", {}), "b": ("b", {})}, "")
    assert clean.verdict == "held"
    where = {"attack": "fgsm-transfer", "metric": "adv_acc"}
    f = t.claim("a beats b on black-box", ">", diff, {"a": ("a", where), "b": ("b", where)}, "")
    assert f.verdict == "not checkable"
    assert "A scratch syn, which b rests on, was still improving" in f.evidence
    assert "(seed 2)" in f.evidence
    # read back from a CSV the empty strings are NaN: nothing is held against the claim
    t = ClaimTester(df.assign(upstream_unfinished=float("nan")))
    assert t.claim("a beats b", ">", diff, {"a": ("a", {}), "b": ("b", {})}, "").verdict == "held"


def test_the_gradient_norm_claim_checks_its_models_like_every_claim():
    """Fig. 10's claim (medians of per-image gradient norms) rests on FT and Scratch too: not
    checkable when FT's Model A was still improving, decided when the lineage finished."""
    clean = _rows({"ft": [0.9] * 3, "scratch": [0.9] * 3}, upstream_unfinished="")
    norms = pd.DataFrame([{"experiment": "t", "task": "d", "method": m, "seed": s,
                           "attack": "none", "eps": 0.0, "metric": "grad_norm",
                           "value": (0.1 if m == "ft" else 0.5) + 0.01 * i}
                          for m in ("ft", "scratch") for s in range(3) for i in range(20)])
    df = pd.concat([clean, norms], ignore_index=True)
    grad = next(f for f in r1.check_findings(df) if "gradient norms" in f.claim)
    assert grad.verdict == "held"
    df.loc[(df.method == "ft") & (df.metric == "clean_acc") & (df.seed == 1),
           "upstream_unfinished"] = "A scratch syn"
    grad = next(f for f in r1.check_findings(df) if "gradient norms" in f.claim)
    assert grad.verdict == "not checkable" and "A scratch syn, which FT rests on" in grad.evidence

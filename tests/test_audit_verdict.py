"""The audit's worst-case verdict with intervals, its warnings, and the in-memory API.

Intervals are checked against their closed forms (Wilson's score interval, Newcombe's hybrid
interval); verdicts on hand-made result tables whose counts are known; the in-memory API
against the file-based audit of the same images and models.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from transferguard.auditing import audit
from transferguard.auditing.report import (
    Rate,
    band,
    exposure_of,
    gap_interval,
    verdict_line,
    wilson,
)
from transferguard.cli import main
from transferguard.data import load_domain
from transferguard.models import create_model, save_checkpoint

FAST = dict(pgd_steps=1, feature_steps=1, candidates=1, device="cpu", progress=False)


def _wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(0, 36), (5, 36), (18, 36), (36, 36), (3, 7)])
def test_wilson_interval_matches_its_closed_form(k, n):
    lo, hi = wilson(k, n)
    exp_lo, exp_hi = _wilson_by_hand(k, n)
    assert lo == pytest.approx(max(exp_lo, 0.0), abs=1e-9)
    assert hi == pytest.approx(min(exp_hi, 1.0), abs=1e-9)
    assert math.isnan(wilson(0, 0)[0])


def test_gap_interval_is_newcombes_hybrid():
    a = Rate(20, 40, *wilson(20, 40))
    n = Rate(2, 40, *wilson(2, 40))
    lo, hi = gap_interval(a, n)
    d = 0.5 - 0.05
    assert lo == pytest.approx(d - math.hypot(0.5 - a.low, n.high - 0.05))
    assert hi == pytest.approx(d + math.hypot(a.high - 0.5, 0.05 - n.low))
    assert lo < d < hi


def test_bands_apply_to_the_whole_interval():
    assert band(0.41, 0.9) == "HIGH"
    assert band(0.15, 0.399) == "MODERATE"
    assert band(-0.05, 0.149) == "LOW"
    assert band(0.10, 0.20) == "UNDETERMINED"
    assert band(0.30, 0.45) == "UNDETERMINED"


def _table(rows: list[tuple[str, str, float, int, int]], eps: float = 8 / 255) -> pd.DataFrame:
    """Result rows of (method, attack, eps, k fooled, n correct) with their ASRs."""
    out = []
    for method, attack, e, k, n in rows:
        base = {"experiment": "audit", "method": method, "attack": attack, "eps": e}
        out += [{**base, "metric": "asr", "value": k / n if n else math.nan},
                {**base, "metric": "n_fooled", "value": k},
                {**base, "metric": "n_correct", "value": n}]
    return pd.DataFrame(out)


def test_verdict_takes_the_strongest_source_attack_and_its_interval():
    e = 8 / 255
    df = _table([("target", "feature-transfer", e, 10, 100), ("target", "fgsm-transfer", e, 80, 100),
                 ("target", "layer-transfer", e, 90, 100), ("target", "noise", e, 1, 100),
                 ("target", "pgd-white", e, 100, 100)])   # white-box never enters the verdict
    ex = exposure_of(df, "target", e)
    assert ex.attack == "layer-transfer" and (ex.best.k, ex.best.n) == (90, 100)
    assert ex.level == "HIGH" and ex.gap_low >= 0.40
    line = verdict_line(df)
    assert line.startswith("**HIGH exposure**") and "90/100" in line and "95 % CI" in line


def test_few_images_give_undetermined_between_two_bands():
    e = 8 / 255
    df = _table([("target", "fgsm-transfer", e, 5, 36), ("target", "noise", e, 0, 36)])
    ex = exposure_of(df, "target", e)
    assert ex.level == "UNDETERMINED" and ex.spans == "LOW and MODERATE"
    assert "spans LOW and MODERATE" in verdict_line(df)
    # a gap of 11 points measured on 3,600 images is decided: its interval (about ±1 point)
    # lies below 15
    df = _table([("target", "fgsm-transfer", e, 400, 3600), ("target", "noise", e, 0, 3600)])
    assert exposure_of(df, "target", e).level == "LOW"


# ---------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("verdict")
    torch.manual_seed(0)
    source = create_model("dtn", 10).eval()
    torch.manual_seed(1)
    target = create_model("dtn", 10).eval()
    save_checkpoint(source, root / "source")
    # a checkpoint that claims far better accuracy than an untrained model has, and another parent
    save_checkpoint(target, root / "target", {"parent": "elsewhere/other-source.safetensors",
                                              "metrics": {"test_acc": 0.99}})
    dom = load_domain("ucidigits", size=32)
    x, y = dom.test.x[:30], dom.test.y[:30]
    np.savez(root / "d.npz", images=x.permute(0, 2, 3, 1).numpy(), labels=y.numpy())
    return {"root": root, "source": source, "target": target, "x": x, "y": y}


def test_verdict_eps_is_audited_even_when_not_listed(files, tmp_path, capsys):
    out = tmp_path / "a"
    code = main(["audit", "--source", str(files["root"] / "source.safetensors"), "--target",
                 str(files["root"] / "target.safetensors"), "--data", str(files["root"] / "d.npz"),
                 "--eps", "4/255,16/255", "--pgd-steps", "1", "--feature-steps", "1",
                 "--candidates", "1", "--out", str(out), "--quiet", "--device", "cpu"])
    stdout = capsys.readouterr().out
    assert code == 0
    df = pd.read_csv(out / "results.csv")
    assert sorted(df[df.metric == "asr"].eps.unique()) == pytest.approx([4 / 255, 8 / 255, 16 / 255])
    assert "ε=8/255" in stdout
    md = (out / "report.md").read_text()
    # warnings reach the report, not only stderr
    assert "records its parent as `elsewhere/other-source.safetensors`" in md
    assert "far below the 99.0 % its checkpoint records" in md


def test_in_memory_api_equals_the_file_based_audit(files):
    on_disk = audit(f"dtn:{files['root'] / 'source.safetensors'}",
                    str(files["root"] / "target.safetensors"), str(files["root"] / "d.npz"),
                    eps=[8 / 255], **FAST)
    x, y = files["x"], files["y"]
    forms = [(x.float() / 255, y),                                   # float N×C×H×W tensors
             (x.permute(0, 2, 3, 1).numpy(), y.numpy())]              # uint8 N×H×W×C arrays
    cols = ["method", "attack", "eps", "metric"]
    ref = on_disk[on_disk.metric.isin(["asr", "clean_acc", "n_fooled"])].set_index(cols)["value"]
    for data in forms:
        mem = audit(files["source"], files["target"], data, eps=[8 / 255], **FAST)
        got = mem[mem.metric.isin(["asr", "clean_acc", "n_fooled"])].set_index(cols)["value"]
        pd.testing.assert_series_equal(got.sort_index(), ref.sort_index(), check_names=False)


def test_in_memory_api_rejects_what_it_cannot_audit(files):
    from transferguard.errors import ConfigError, DataError

    with pytest.raises(ConfigError, match="transferguard model"):
        audit(torch.nn.Linear(3, 3), files["target"], (files["x"], files["y"]), **FAST)
    with pytest.raises(DataError, match="labels"):
        audit(files["source"], files["target"], (files["x"], files["y"][:3]), **FAST)


def test_report_shows_example_images_of_the_verdicts_attack(files, tmp_path):
    out = tmp_path / "ex"
    df = audit(files["source"], files["target"], (files["x"], files["y"]), eps=[8 / 255],
               out=out, **FAST)
    assert (out / "examples.png").stat().st_size > 0
    md = (out / "report.md").read_text()
    worst = exposure_of(df, "target", 8 / 255).attack
    assert "## Example images" in md and "![Example images](examples.png)" in md
    from transferguard.auditing.report import label

    assert label(worst) in md.split("## Example images", 1)[1]


def test_budget_names_its_settings_and_explicit_options_override_it(files):
    from transferguard.attacks import BUDGETS, SUITE, suite_options
    from transferguard.errors import ConfigError

    fast, thorough = BUDGETS["fast"], BUDGETS["thorough"]
    assert fast.steps < thorough.steps and fast.candidates < thorough.candidates
    src = files["source"]
    assert suite_options(SUITE["feature"], fast, src) == {
        "steps": fast.feature_steps, "candidates": fast.candidates, "features": "post",
        "batch_neurons": 4}
    assert suite_options(SUITE["fia"], thorough, src) == {"steps": thorough.steps,
                                                          "ensemble": thorough.fia_ensemble}
    assert suite_options(SUITE["fgsm"], thorough, src) == {}
    assert fast.with_overrides(steps=3).steps == 3 and fast.with_overrides().candidates == 4
    with pytest.raises(ConfigError, match="did you mean 'fast'"):
        audit(src, files["target"], (files["x"], files["y"]), budget="fats", **FAST)
    df = audit(src, files["target"], (files["x"][:6], files["y"][:6]), eps=[8 / 255],
               budget="thorough", **FAST)
    note = next(n for n in df.attrs["notes"] if n.startswith("Attack budget"))
    # the explicit FAST options (1 step, 1 candidate) override the thorough budget's
    assert "`thorough`: 1 iterations" in note and "over 1 candidate" in note

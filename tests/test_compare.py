"""``transferguard compare`` and ``--first-seed``: independent replications and their agreement."""

from __future__ import annotations

import pandas as pd
import pytest

from transferguard.cli import main
from transferguard.experiments import EXPERIMENTS
from transferguard.experiments.compare import compare
from transferguard.experiments.reproduce import command_line, shift_seeds
from transferguard.reports.common import FINDING_COLUMNS, Finding, findings_frame


def _write(folder, experiment, verdicts):
    folder.mkdir(parents=True, exist_ok=True)
    findings = [Finding(claim, {"held": True, "did not hold": False}.get(v), "e",
                        inconclusive=v == "inconclusive") for claim, v in verdicts.items()]
    findings_frame(experiment, findings).to_csv(folder / "findings.csv", index=False)


def test_compare_counts_agreement_among_claims_decided_in_both(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a / "exp1", "exp1", {"c1": "held", "c2": "held", "c3": "did not hold",
                                "c4": "inconclusive", "c5": "held"})
    _write(a / "exp2", "exp2", {"d1": "not checkable"})
    _write(b / "exp1", "exp1", {"c1": "held", "c2": "did not hold", "c3": "did not hold",
                                "c4": "held", "c6": "held"})
    _write(b / "exp2", "exp2", {"d1": "not checkable"})
    cmp = compare(a, b)
    assert len(cmp.table) == 5 and cmp.only_a == 1 and cmp.only_b == 1
    assert len(cmp.both_decided) == 3 and cmp.agree == 2  # c1, c3 agree; c2 flips
    assert cmp.undecided_share("a") == pytest.approx(2 / 5)  # c4, d1
    assert cmp.undecided_share("b") == pytest.approx(1 / 5)  # d1
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "the same verdict in 2 (67 %)" in out and "differs: [exp1] c2" in out


def test_compare_refuses_a_folder_without_findings(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "findings.csv").write_text("experiment,claim\nfoo,bar\n")
    assert main(["compare", str(tmp_path / "x"), str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a findings table" in err[0]


def test_findings_frame_has_the_promised_columns_and_verdicts():
    df = findings_frame("e", [Finding("a", True, ""), Finding("b", False, ""),
                              Finding("c", None, "", inconclusive=True), Finding("d", None, "")])
    assert list(df.columns) == FINDING_COLUMNS
    assert list(df.verdict) == ["held", "did not hold", "inconclusive", "not checkable"]


@pytest.mark.parametrize("name", ["demo", "reno-table4", "reno-adaptive"])
def test_first_seed_shifts_every_seed_list_of_a_plan(name):
    plan = EXPERIMENTS[name].plan("offline", 3)
    shifted = shift_seeds(plan, 5)
    assert shift_seeds(plan, 0) is plan

    def seeds(p):
        if hasattr(p, "to_json"):  # a typed plan: its JSON
            p = p.to_json()
        if isinstance(p, dict):
            return [v for k, v in p.items() if k == "seeds"] + \
                [s for v in p.values() for s in seeds(v)]
        return [s for v in p for s in seeds(v)] if isinstance(p, list) else []

    assert seeds(plan) and all(s == [0, 1, 2] for s in seeds(plan))
    assert all(s == [5, 6, 7] for s in seeds(shifted))
    assert command_line(name, "offline", 3, 5).endswith("--seeds 3 --first-seed 5")


def test_findings_csv_columns_roundtrip(tmp_path):
    _write(tmp_path, "e", {"c": "held"})
    assert list(pd.read_csv(tmp_path / "findings.csv").columns) == FINDING_COLUMNS

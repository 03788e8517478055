"""The results layer (``transferguard.results``): attack names, metric names, the table writer."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pandas as pd
import pytest

from transferguard import results
from transferguard.results import (
    CLEAN,
    FINDING_COLUMNS,
    LEGACY_ATTACK_NAMES,
    NOISE,
    RESULT_COLUMNS,
    Metric,
    Threat,
    attack_name,
    normalise_attack_names,
    parse_attack_name,
    results_frame,
    threat_of,
    write_results,
)


def test_attack_name_joins_attack_and_threat() -> None:
    assert attack_name("fgsm", Threat.TRANSFER) == "fgsm-transfer"
    assert attack_name("fgsm", Threat.WHITE) == "fgsm-white"
    assert attack_name("mi-di-ti-fgsm", "transfer") == "mi-di-ti-fgsm-transfer"
    assert type(attack_name("pgd", Threat.WHITE)) is str  # rows hold plain strings
    for bad in ("", CLEAN, "fgsm-white", "pgd-transfer"):
        with pytest.raises(ValueError):
            attack_name(bad, Threat.WHITE)
    with pytest.raises(ValueError):
        attack_name("fgsm", "black")  # not a threat: the old paper-1 suffix is gone


def test_enum_values_are_the_table_strings() -> None:
    assert [t.value for t in Threat] == ["white", "transfer"]
    assert (CLEAN, NOISE) == ("none", "noise")
    assert {m.value for m in Metric} >= {
        "clean_acc", "adv_acc", "adv_acc_cond", "asr", "gamma", "n_correct", "n_fooled",
        "n_images", "n_classes", "grad_norm", "weight_distance", "feature_distance",
        "feature_loss"}
    assert Metric.ASR == "asr" and f"{Metric.GAMMA}" == "gamma" and str(Metric.N_FOOLED) == "n_fooled"
    assert RESULT_COLUMNS == ["experiment", "task", "method", "arch", "seed", "attack", "eps",
                              "metric", "value"]
    assert FINDING_COLUMNS[:3] == ["experiment", "claim", "verdict"]


def test_parse_attack_name_inverts_attack_name() -> None:
    assert parse_attack_name("pgd-white") == ("pgd", Threat.WHITE)
    assert parse_attack_name("feature-transfer") == ("feature", Threat.TRANSFER)
    for plain in (CLEAN, NOISE, "feature"):
        assert parse_attack_name(plain) == (plain, None) and threat_of(plain) is None


def test_every_registry_attack_has_a_name_for_both_threats() -> None:
    """Contract: each name of the attack registries gives a valid, distinct, parseable name."""
    from transferguard.attacks import ATTACKS, SUITE

    names = set()
    for attack in {*SUITE, *ATTACKS}:
        for threat in Threat:
            name = attack_name(attack, threat)
            assert parse_attack_name(name) == (attack, threat)
            assert name not in LEGACY_ATTACK_NAMES and name not in (CLEAN, NOISE)
            names.add(name)
    assert len(names) == 2 * len({*SUITE, *ATTACKS})


def _legacy_rows() -> list[dict]:
    return [{"attack": "none", "eps": 0.0, "metric": "clean_acc", "value": 0.9},
            {"attack": "fgsm-white", "eps": 0.1, "metric": "adv_acc", "value": 0.3},
            {"attack": "fgsm-black", "eps": 0.1, "metric": "adv_acc", "value": 0.1 + 0.2},
            {"attack": "fgsm-black", "eps": 0.1, "metric": "gamma", "value": -1 / 3}]


def test_normalise_attack_names_on_rows() -> None:
    rows = _legacy_rows()
    out = normalise_attack_names(rows)
    assert [r["attack"] for r in out] == ["none", "fgsm-white", "fgsm-transfer", "fgsm-transfer"]
    assert [r["value"] for r in out] == [r["value"] for r in rows]  # numbers untouched
    assert rows[2]["attack"] == "fgsm-black"  # the input is not modified
    assert normalise_attack_names(out) is out  # nothing legacy: the same object back
    assert normalise_attack_names([]) == []


def test_normalise_attack_names_on_a_frame() -> None:
    df = results_frame(_legacy_rows())
    out = normalise_attack_names(df)
    assert out is not df and list(df.attack).count("fgsm-black") == 2
    assert list(out.attack) == ["none", "fgsm-white", "fgsm-transfer", "fgsm-transfer"]
    pd.testing.assert_frame_equal(out.drop(columns="attack"), df.drop(columns="attack"))
    assert normalise_attack_names(out) is out
    no_attack = pd.DataFrame({"value": [1.0]})
    assert normalise_attack_names(no_attack) is no_attack
    with pytest.raises(TypeError):
        normalise_attack_names(42)


def test_results_frame_puts_the_standard_columns_first() -> None:
    df = results_frame([{"value": 1.0, "extra": "x", "attack": "noise", "seed": 0}])
    assert list(df.columns) == RESULT_COLUMNS + ["extra"]
    assert df.loc[0, "experiment"] is None and df.loc[0, "attack"] == "noise"


def test_write_results_round_trips_atomically(tmp_path) -> None:
    df = results_frame(normalise_attack_names(_legacy_rows()))
    path = write_results(df, tmp_path / "run" / "results.csv")
    assert path == tmp_path / "run" / "results.csv"
    back = pd.read_csv(path)
    assert list(back.columns) == list(df.columns)
    assert list(back.attack) == list(df.attack) and list(back.value) == list(df.value)
    assert os.listdir(tmp_path / "run") == ["results.csv"]  # no temporary file left behind

    class Boom(Exception):
        pass

    class Broken:  # fails half-way through writing its CSV
        def to_csv(self, tmp: str, index: bool) -> None:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write("half")
            raise Boom

    with pytest.raises(Boom):
        write_results(Broken(), path)  # type: ignore[arg-type]
    assert pd.read_csv(path).equals(back)  # the old file intact
    assert os.listdir(tmp_path / "run") == ["results.csv"]


def test_results_module_is_light() -> None:
    """Only the standard library and ``_io`` at import time: no torch, no pandas."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(results.__file__).read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    modules = {(n.module or "") if isinstance(n, ast.ImportFrom) else n.names[0].name for n in top}
    assert modules <= {"__future__", "os", "collections.abc", "enum", "pathlib", "typing", "_io"}


def test_paper1_rows_from_an_old_cached_unit_carry_the_new_name() -> None:
    """An evaluation unit stored before the rename still holds ``fgsm-black``: renamed on read."""
    from transferguard.experiments.spec import DataSpec, TrainSpec
    from transferguard.papers.paper1 import run as paper1

    a, b = DataSpec("ucidigits"), DataSpec("mnist5k")
    plan = paper1.make_plan("t", "offline", 1, [paper1.make_task(a, b)], strategies=("ft",),
                            train={k: TrainSpec() for k in ("source", "target", "finetune")})
    split = SimpleNamespace(test=SimpleNamespace(y=[0] * 7), num_classes=10)
    runner = SimpleNamespace(cached_eval=lambda unit, compute: _legacy_rows(),
                             domain=lambda spec: split, hp_columns=lambda spec: {},
                             upstream_unfinished=lambda *specs: "")
    rows = paper1.evaluate_strategy(runner, plan, plan.tasks[0], "ft", 0)
    assert [r["attack"] for r in rows] == ["none", "fgsm-white", "fgsm-transfer", "fgsm-transfer"]
    assert [r["value"] for r in rows] == [r["value"] for r in _legacy_rows()]
    assert paper1.FGSM_TRANSFER == "fgsm-transfer" and paper1.FGSM_WHITE == "fgsm-white"

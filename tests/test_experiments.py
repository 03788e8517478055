"""Experiments: every plan resolves at both scales; a tiny grid runs end to end, caches, reports."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest

from transferguard.data.registry import resolve_spec
from transferguard.experiments import EXPERIMENTS, Runner, Store
from transferguard.experiments.base import RESULT_COLUMNS
from transferguard.experiments.reproduce import results_frame
from transferguard.experiments.spec import DataSpec, ModelSpec, TrainSpec
from transferguard.methods import create_method
from transferguard.models import ARCHS
from transferguard.papers.paper1 import report as r1
from transferguard.papers.paper1 import run as paper1
from transferguard.papers.paper1.plan import Paper1Plan
from transferguard.papers.paper2 import report as r2
from transferguard.papers.paper2 import run as paper2
from transferguard.papers.paper2.plan import Paper2Plan


def _model_specs(plan) -> list[ModelSpec]:
    specs = []
    if hasattr(plan, "families"):
        for fam in plan.families:
            for seed in fam.seeds:
                for arch in fam.archs:
                    for t in fam.targets:
                        for row in fam.methods:
                            specs.append(paper2.target_spec(fam, arch, DataSpec(**t), row, seed))
    else:
        for seed in plan.seeds:
            for task in plan.tasks:
                specs += list(paper1.model_specs(plan, task, seed).values())
    return specs


@pytest.mark.parametrize("scale", ["offline", "paper"])
@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_resolves_and_validates(name: str, scale: str) -> None:
    plan = EXPERIMENTS[name].plan(scale, 2)
    json.dumps(plan.to_json())  # the resolved spec is JSON
    specs = _model_specs(plan)
    assert specs
    for spec in specs:
        chain = [spec]
        while chain[-1].parent is not None:
            chain.append(chain[-1].parent)
        for s in chain:
            assert s.arch in ARCHS, s.arch
            if s.method != "pretrained":
                resolve_spec(s.data.domain)  # raises ConfigError for an unknown domain
                create_method(s.method, **s.method_options)
        assert len(spec.key()) == 16
    assert len({s.key() for s in specs}) <= len(specs)


def test_spec_key_depends_on_parent_and_not_on_label() -> None:
    a = ModelSpec(DataSpec("mnist5k"), "dtn", label="x")
    b = ModelSpec(DataSpec("ucidigits"), "dtn", method="ft", parent=a)
    assert a.key() == a.with_(label="y").key()
    assert b.key() != b.with_(parent=a.with_(seed=1)).key()


TINY = TrainSpec(epochs=None, iterations=6, batch_size=32, eval_every=3)


def _tiny_plan1() -> Paper1Plan:
    a = DataSpec("ucidigits", n_train_per_class=12, n_test_per_class=5)
    b = DataSpec("mnist5k", n_train_per_class=6, n_test_per_class=4)
    c = DataSpec("mnist5k", n_train_per_class=12, n_test_per_class=2, split_seed=1)
    tasks = [paper1.make_task(a, b, c, name="U→M")]
    return paper1.make_plan("tiny", "offline", 1, tasks, strategies=("scratch", "ft", "commoninit"),
                            train={k: TINY for k in ("source", "common", "target", "finetune")},
                            eps_255=(2, 16), grad_norms=True)


def test_paper1_grid_end_to_end_caches_and_reports(tmp_path) -> None:
    plan = _tiny_plan1()
    runner = Runner(Store(tmp_path / "store"), device="cpu", progress=False)
    rows = paper1.run_transfer_grid(runner, plan)
    # models: A, B scratch, B ft, C, A ci, B ci — A_scratch shared by scratch and ft
    assert runner.counters["trained"] == 6
    df = results_frame(rows)
    assert list(df.columns[:len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert set(df.method) == {"scratch", "ft", "commoninit"}
    assert {"clean_acc", "adv_acc", "adv_acc_cond", "asr", "gamma", "grad_norm"} <= set(df.metric)
    assert df[df.metric != "gamma"]["value"].between(0, 1e6).all()
    n_test = 40
    assert (df.metric == "grad_norm").sum() == 3 * n_test
    md = r1.build_report(df, tmp_path, plan).markdown
    assert "held on this run" in md and (tmp_path / "gamma_u-m.png").exists()

    # a second run over the same store recomputes nothing and gives the same table
    again = Runner(Store(tmp_path / "store"), device="cpu", progress=False)
    df2 = results_frame(paper1.run_transfer_grid(again, plan))
    assert again.counters["trained"] == 0 and again.counters["evaluated"] == 0
    pd.testing.assert_frame_equal(df, df2)


def test_test_split_is_independent_of_the_training_budget() -> None:
    """Paper-2 crafted batches are keyed by DataSpec.test_identity(); that relies on this."""
    import torch

    from transferguard.data import load_domain

    small = DataSpec("ucidigits", n_train_per_class=5, n_test_per_class=3)
    large = DataSpec("ucidigits", n_train_per_class=20, n_test_per_class=3, val_fraction=0.2)
    a, b = load_domain("ucidigits", **small.load_kwargs()), load_domain("ucidigits", **large.load_kwargs())
    assert len(a.train) != len(b.train)
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.test.y, b.test.y)
    assert small.test_identity() == large.test_identity()
    assert small.test_identity() != DataSpec("ucidigits", n_train_per_class=5).test_identity()


def test_paper2_grid_end_to_end(tmp_path) -> None:
    src = paper2.trained_source(DataSpec("mnist5k", n_train_per_class=10, n_test_per_class=2),
                                "dtn", TINY)
    rows_ = [paper2.method_row("fine-tune", "ft", TINY), paper2.method_row("re-training", "scratch", TINY),
             paper2.method_row("renofeation", "renofeation",
                               TrainSpec(**{**TINY.__dict__, "swa": {"iterations": 4, "average_every": 2}}))]
    fam = paper2.make_plan("tiny2", "offline", 1, source=src, arch="dtn",
                           targets=[DataSpec("ucidigits", n_train_per_class=8, n_test_per_class=3)],
                           methods=rows_, attack={"eps": 8 / 255, "steps": 3, "step_size": 0.01,
                                                  "m": 1000.0, "neuron": 0, "restarts": 1},
                           eps_sweep=[16 / 255], feature_loss=True)
    plan = Paper2Plan("tiny2", "offline", (replace(fam, family="syn"),), "")
    runner = Runner(Store(tmp_path / "store"), device="cpu", progress=False)
    df = results_frame(paper2.run_families(runner, plan))
    assert runner.counters["trained"] == 4  # source + three targets
    # One feature batch + one noise batch per ε (plan's + sweep), shared by all targets.
    assert runner.counters["crafted"] == 4
    feat = df[(df.attack == "feature") & (df.metric == "asr")]
    assert sorted(feat.eps.unique()) == [8 / 255, 16 / 255] and len(feat) == 6
    got = set(zip(df.attack, df.metric, strict=True))
    assert {("none", "clean_acc"), ("feature", "asr"), ("noise", "asr"), ("none", "weight_distance"),
            ("none", "feature_distance"), ("none", "feature_loss")} <= got
    md = r2.build_report(df, tmp_path, plan).markdown
    assert "Renofeation" in md and "ASR" in md
    assert "Sensitivity: ASR over ε" in md and (tmp_path / "syn_asr_over_eps.png").exists()


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_parallel_backends_give_the_serial_table(tmp_path, backend, monkeypatch, caplog) -> None:
    if backend == "ray":
        pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'transferguard[ray]')")
    import logging
    from types import SimpleNamespace

    import torch

    from transferguard.experiments import backends

    plan = replace(_tiny_plan1(), strategies=("scratch", "ft"))
    # Compare like with like on any machine: each worker gets cpu_count // workers threads, so
    # make that 2 // 2 = 1 (backends only asks os for cpu_count) and run the serial side with
    # one thread too. Training is bit-reproducible only at equal thread counts.
    monkeypatch.setattr(backends, "os", SimpleNamespace(cpu_count=lambda: 2))
    caplog.set_level(logging.INFO, logger=backends.__name__)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = Runner(Store(tmp_path / "serial"), device="cpu", progress=False)
        ref = results_frame(paper1.run_transfer_grid(serial, plan))
        par = Runner(Store(tmp_path / backend), device="cpu", progress=False, backend=backend, workers=2)
        got = results_frame(paper1.run_transfer_grid(par, plan))
    finally:
        torch.set_num_threads(threads)
    assert "(2 workers × 1 threads)" in caplog.text
    assert par.counters["trained"] == serial.counters["trained"] == 3  # A, B scratch, B ft
    assert par.counters["loaded"] == 3  # the parallel runner trained nothing itself
    pd.testing.assert_frame_equal(ref.drop(columns=["source", "target"]),
                                  got.drop(columns=["source", "target"]))


def test_hyper_parameter_grid_keeps_the_best_on_validation(tmp_path) -> None:
    spec = ModelSpec(DataSpec("ucidigits", n_train_per_class=12), "dtn", train=TINY,
                     hp_grid=((0.05, 5e-4), (1e-5, 5e-4)))
    runner = Runner(Store(tmp_path), device="cpu", progress=False)
    meta = runner.meta(spec)
    trials = meta["hp_trials"]
    assert [t["lr"] for t in trials] == [0.05, 1e-5]
    best = max(trials, key=lambda t: t["best_val_acc"])
    assert meta["selected_lr"] == best["lr"] and meta["best_val_acc"] == best["best_val_acc"]
    assert runner.hp_columns(spec)["lr"] == best["lr"]


def test_crafted_batches_are_stored_and_reused(tmp_path) -> None:
    import torch

    store = Store(tmp_path)
    calls = []

    def craft():
        calls.append(1)
        return {2 / 255: torch.rand(3, 3, 4, 4), 16 / 255: torch.rand(3, 3, 4, 4)}

    first = Runner(store, device="cpu", progress=False).crafted({"k": 1}, craft)
    again = Runner(Store(tmp_path), device="cpu", progress=False)
    second = again.crafted({"k": 1}, craft)
    assert len(calls) == 1 and again.counters["crafted"] == 0
    assert set(second) == set(first)  # the ε keys survive the round trip exactly
    for e in first:
        assert torch.equal(first[e], second[e])
    (next((tmp_path / "crafted").glob("*.safetensors"))).write_bytes(b"corrupt")
    third = Runner(Store(tmp_path), device="cpu", progress=False).crafted({"k": 1}, craft)
    assert len(calls) == 2 and set(third) == set(first)  # a corrupt entry is recomputed


def test_train_spec_is_train_config_minus_volatile_fields() -> None:
    from dataclasses import fields

    from transferguard.training import TrainConfig

    config = {f.name for f in fields(TrainConfig)} - set(TrainConfig.VOLATILE) - {"seed"}
    assert {f.name for f in fields(TrainSpec)} == config
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for f in fields(TrainSpec):  # same defaults, except epochs (a spec must say what it trains)
        if f.name != "epochs":
            assert f.default == defaults[f.name], f.name


def test_a_syndigits_model_a_trains_at_its_own_offline_budget():
    """Offline, a paper-1 Model A trained on SynDigits gets SYN_SOURCE (Model C's budget above 500
    images per class) and a WRN-16-2 Model B gets WRN_B (sized by pilots: at the plan's budgets they were still improving); every other model
    keeps the plan's budget, the task's JSON round-trips, and paper scale is untouched."""
    from transferguard.experiments import get_experiment
    from transferguard.papers.paper1 import run as paper1
    from transferguard.papers.paper1.plan import Paper1Plan
    from transferguard.papers.paper1.specs import OFFLINE_TRAIN, SYN_SOURCE, WRN_B

    kinds = set()
    for name in ("fig3", "fig6", "fig7", "fig8", "fig9", "fig10"):
        plan = get_experiment(name).plan("offline", 1)
        assert Paper1Plan.from_json(plan.to_json()) == plan
        for task in plan.tasks:
            specs = paper1.model_specs(plan, task, 0)
            syn = task.A["domain"].startswith("syndigits")
            kinds.add(syn)
            small = (task.A["n_train_per_class"] or 10**9) <= 500
            want = (SYN_SOURCE if small else OFFLINE_TRAIN["common"]) if syn \
                else OFFLINE_TRAIN["source"]
            assert specs["A_scratch"].train == want
            wrn = task.arch == "wrn-16-2"
            assert specs["B_scratch"].train == (WRN_B if wrn else OFFLINE_TRAIN["target"])
            assert specs["B_ft"].train == (WRN_B if wrn else OFFLINE_TRAIN["finetune"])
            assert specs["B_ft"].parent == specs["A_scratch"]
        assert all(t.train is None for t in get_experiment(name).plan("paper", 1).tasks)
    assert kinds == {True, False}  # fig3 and fig8 also have a handwritten Model A
    # fig3's Syn→M Model A is the demo's Model C: the same data, seed and budget, one model
    demo, fig3 = (get_experiment(n).plan("offline", 1) for n in ("demo", "fig3"))
    assert paper1.model_specs(fig3, fig3.tasks[2], 0)["A_scratch"].key() == \
        paper1.model_specs(demo, demo.tasks[0], 0)["C"].key()

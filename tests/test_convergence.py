"""The plateau flag: a rule fixed in code, checked on hand-written validation histories."""

from __future__ import annotations

from transferguard.training.convergence import converged, plateaued, unfinished


def _history(accs: list[float], every: int = 10, phase: str = "main") -> list[dict]:
    return [{"iteration": every * (i + 1), "val_acc": a, "phase": phase} for i, a in enumerate(accs)]


def test_levelled_off_and_still_climbing_runs():
    # best 0.90 reached early; the last quarter (iterations > 75) adds nothing
    assert plateaued(_history([0.5, 0.8, 0.9, 0.9, 0.89, 0.9, 0.9, 0.9, 0.9, 0.9])) is True
    # the last quarter adds 5 points: still improving when the budget ended
    assert plateaued(_history([0.5, 0.6, 0.7, 0.75, 0.8, 0.82, 0.84, 0.85, 0.88, 0.90])) is False
    # exactly one point more in the last quarter still counts as a plateau
    assert plateaued(_history([0.5, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.81, 0.8])) is True


def test_a_tiny_validation_split_tolerates_one_image():
    climbing = _history([0.3, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.7, 0.7])
    assert plateaued(climbing) is False
    # ten validation images: one more correct image is ten points, within the tolerance
    assert plateaued(climbing, n_val=10) is True
    assert plateaued(climbing, n_val=1000) is False


def test_unknown_without_validations_and_swa_rows_ignored():
    assert plateaued([]) is None
    assert plateaued(_history([0.9])) is None
    swa = _history([0.5, 0.8, 0.8, 0.8]) + [{"iteration": 50, "val_acc": 0.99, "phase": "swa-final"}]
    assert plateaued(swa) is True


def test_the_runner_records_convergence_and_the_data_bytes(tmp_path):
    import json

    from transferguard.experiments import Runner, Store
    from transferguard.experiments.spec import DataSpec, ModelSpec, TrainSpec

    spec = ModelSpec(DataSpec("ucidigits", n_train_per_class=10, n_test_per_class=3), "dtn",
                     train=TrainSpec(epochs=None, iterations=8, batch_size=32, eval_every=2))
    runner = Runner(Store(tmp_path), device="cpu", progress=False)
    runner.model(spec)
    meta = json.loads((tmp_path / "models" / f"{spec.key()}.json").read_text())
    assert meta["iterations_run"] == 8 and meta["best_iteration"] in (2, 4, 6, 8)
    assert meta["plateaued"] in (True, False)
    assert meta["data_sha256"] == runner.domain(spec.data).digest()
    assert len(meta["tensors_sha256"]) == 64


def test_a_perfect_validation_score_is_a_plateau():
    # 2 points gained in the last quarter, but to 100 %: nothing is left to gain
    assert plateaued(_history([0.5, 0.9, 0.98, 0.98, 0.98, 0.98, 0.98, 0.98, 1.0, 1.0])) is True
    assert converged({"plateaued": False, "best_val_acc": 1.0}) is True  # a sidecar from before
    assert converged({"plateaued": False, "best_val_acc": 0.99}) is False
    assert converged({"plateaued": True, "best_val_acc": 0.5}) is True
    assert converged({}) is None  # a public pre-trained model: no record


def test_unfinished_names_the_models_still_improving():
    metas = [{"label": "A", "plateaued": False, "best_val_acc": 0.3},
             {"label": "C", "plateaued": True, "best_val_acc": 0.8},
             {"label": "U", "plateaued": False, "best_val_acc": 1.0},
             {"key": "k", "plateaued": False}, {}]
    assert unfinished(metas) == "A; k"
    assert unfinished([]) == ""


def test_the_runner_names_unfinished_ancestors_and_attack_sources(tmp_path):
    """The lineage column follows the sidecars: a parent marked still improving is named for its
    child and for rows crafted on it, whatever the tiny training runs happened to reach."""
    import json

    from transferguard.experiments import Runner, Store
    from transferguard.experiments.spec import DataSpec, ModelSpec, TrainSpec

    data = DataSpec("ucidigits", n_train_per_class=10, n_test_per_class=3)
    tiny = TrainSpec(epochs=None, iterations=4, batch_size=32, eval_every=2)
    parent = ModelSpec(data, "dtn", train=tiny, label="parent")
    child = ModelSpec(data, "dtn", method="ft", parent=parent, train=tiny, label="child")
    other = ModelSpec(data, "dtn", train=tiny, seed=1, label="other")
    Runner(Store(tmp_path), device="cpu", progress=False).train_all([child, other])
    for spec, flag in ((parent, False), (child, True), (other, False)):  # as if trained so
        path = tmp_path / "models" / f"{spec.key()}.json"
        meta = json.loads(path.read_text())
        path.write_text(json.dumps({**meta, "plateaued": flag, "best_val_acc": 0.5}))
    runner = Runner(Store(tmp_path), device="cpu", progress=False)
    assert runner.upstream_unfinished(child) == "parent"
    assert runner.upstream_unfinished(parent) == ""
    assert runner.upstream_unfinished(child, parent) == "parent"  # not named twice
    assert runner.upstream_unfinished(parent, other) == "other"
    assert runner.upstream_unfinished(other, other) == ""  # a model is not its own upstream
    assert runner.hp_columns(other)["plateaued"] is False

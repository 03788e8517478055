"""``transferguard reproduce NAME --plan``: counts, store detection and estimates, nothing trained."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from cli_helpers import one_line, run
from transferguard.experiments import costplan, get_experiment
from transferguard.experiments.reproduce import shift_seeds
from transferguard.papers.paper1 import run as paper1
from transferguard.papers.paper1.specs import OFFLINE_TRAIN


def _keys_with_parents(specs) -> set[str]:
    keys, todo = set(), list(specs)
    while todo:
        s = todo.pop()
        if s.method != "pretrained":
            keys.add(s.key())
            todo += [s.parent] if s.parent is not None else []
    return keys


@pytest.mark.parametrize("seeds", [1, 3])
def test_demo_counts_models_and_iterations(tmp_path, seeds):
    cost = costplan.experiment_cost("demo", seeds=seeds, store=tmp_path / "store")
    plan = get_experiment("demo").plan("offline", seeds)
    assert set(cost.models) == _keys_with_parents(paper1.needed_models(plan))
    assert len(cost.models) == 6 * seeds  # A, B scratch, B ft, C, A and B commoninit
    per_seed = sum(OFFLINE_TRAIN[k].iterations for k in
                   ("source", "target", "finetune", "common", "finetune", "finetune"))
    assert per_seed == 400 + 150 + 150 + 3000 + 150 + 150
    assert sum(m.iterations * m.trials for m in cost.to_train()) == per_seed * seeds
    assert sum(m.images for m in cost.to_train()) == per_seed * seeds * 128
    assert len(cost.evals) == 3 * seeds  # one unit per (task, strategy, seed)
    assert not any(m.capped for m in cost.models.values())
    assert not (tmp_path / "store").exists()  # planning creates nothing


def test_first_seed_shifts_like_reproduce(tmp_path):
    cost = costplan.experiment_cost("demo", seeds=1, first_seed=4, store=tmp_path)
    plan = shift_seeds(get_experiment("demo").plan("offline", 1), 4)
    assert cost.seeds == [4]
    assert set(cost.models) == _keys_with_parents(paper1.needed_models(plan))
    assert {s.seed for s in cost.specs.values()} == {4}


def test_all_counts_shared_models_once(tmp_path):
    fig4, fig5 = (costplan.experiment_cost(n, seeds=1, store=tmp_path) for n in ("fig4", "fig5"))
    assert set(fig4.models) == set(fig5.models)
    both = costplan.merged([fig4, fig5])
    assert len(both.models) == len(fig4.models) < len(fig4.models) + len(fig5.models)
    costs = costplan.plan_costs("all", seeds=1, store=tmp_path)
    assert [c.name for c in costs] == list(costplan.EXPERIMENTS)
    assert len(costplan.merged(costs).models) < sum(len(c.models) for c in costs)


def test_in_store_detection(tmp_path):
    store = tmp_path / "store"
    cost = costplan.experiment_cost("demo", seeds=1, store=store)
    assert len(cost.to_train()) == len(cost.models) and not (store).exists()
    key = next(iter(cost.models))
    (store / "models").mkdir(parents=True)
    (store / "models" / f"{key}.safetensors").write_bytes(b"x")
    assert len(costplan.experiment_cost("demo", seeds=1, store=store).to_train()) == len(
        cost.models)  # weights without the sidecar are no finished model
    (store / "models" / f"{key}.json").write_text("{}")
    again = costplan.experiment_cost("demo", seeds=1, store=store)
    assert [m.key for m in again.models.values() if m.in_store] == [key]
    from transferguard.experiments.store import Store

    assert Store(store).has_model(key) and costplan._StoreView(store).has_model(key)


def test_h200_profile_is_exact_arithmetic(tmp_path):
    cost = costplan.experiment_cost("demo", seeds=1, store=tmp_path)
    est = costplan.estimate([cost], costplan.profile_rates("h200"))
    rate = costplan.PROFILES["h200"]["dtn"][0][0]
    work = (sum(m.work for m in cost.models.values()) + sum(x.work for x in cost.crafts.values())
            + sum(e.work for e in cost.evals.values()))
    assert est.total_s == pytest.approx(work / rate, rel=1e-12) and est.unknown == set()
    assert est.wall_s == pytest.approx(est.total_s)  # one device: wall = device time
    a = next(m for m in cost.models.values() if m.label.startswith("A scratch"))
    # 400 iterations of 128; mnist5k: 400 per class, 40 of them validation, evaluated every 20
    assert (a.iterations, a.images, a.val_images) == (400, 51_200, 20 * 400)
    assert a.work == 51_200 + 8_000 / 3
    assert costplan.profile_rates("h200")("resnet18", 112) == 4_733 * 4
    assert costplan.profile_rates("h200")("vgg11", 32) is None  # not in the profile
    # Several sizes: the nearest one's rate, scaled by pixels (64 px is overhead-bound on a GPU).
    eff = costplan.profile_rates("h200")
    assert eff("efficientnet_lite0", 64) == 3_398 and eff("efficientnet_lite0", 224) == 2_003
    assert eff("efficientnet_lite0", 32) == 3_398 * 4 and eff("efficientnet_lite0", 160) == (
        pytest.approx(2_003 * (224 / 160) ** 2))


def test_paper_scale_gpu_hours_and_gpus(tmp_path):
    costs = costplan.plan_costs("demo", scale="paper", store=tmp_path)
    rates = costplan.profile_rates("h200")
    one, two = costplan.estimate(costs, rates, 1), costplan.estimate(costs, rates, 2)
    assert one.total_s > 0 and math.isclose(one.total_s, two.total_s)
    assert two.wall_s <= one.wall_s and one.wall_s == pytest.approx(one.total_s)
    assert all(m.capped and m.trials == 9 for m in costs[0].models.values())  # patience, grid


def test_probe_measures_positive_rate():
    rate = costplan.probe_rates([("dtn", 32, 8)], "cpu")
    assert rate("dtn", 32) > 0 and rate("resnet18", 224) is None


def test_cli_plan_prints_and_creates_nothing(capsys, tmp_path):
    code, out, err = run(capsys, "reproduce", "demo", "--plan", "--seeds", "1", "--profile",
                         "h200", "--store", tmp_path / "store", "--out", tmp_path / "out")
    assert code == 0, err
    assert "demo" in out and "est. time" in out and "6 / 0" in out and "h200" in out
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()


def test_cli_plan_all_paper_prints_both_papers(capsys, tmp_path):
    code, out, err = run(capsys, "reproduce", "all", "--scale", "paper", "--plan", "--gpus", "8",
                         "--store", tmp_path / "store")
    assert code == 0, err
    assert "fig3" in out and "reno-table4" in out and "total (shared work once)" in out
    assert "GPU-hours" in out and "wall on 8 devices" in out
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(("argv", "needle"), [
    (["--gpus", "0"], "--gpus must be at least 1"),
    (["--profile", "h100"], "unknown profile 'h100'"),
    (["--seeds", "0"], "--seeds must be at least 1"),
])
def test_cli_plan_bad_values_are_one_line(capsys, tmp_path, argv, needle):
    code, _, err = run(capsys, "reproduce", "demo", "--plan", "--store", tmp_path, *argv)
    assert needle in one_line(code, err)


def test_importing_costplan_needs_no_torch():
    code = ("import sys, transferguard.experiments.costplan as c; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_bf16_run_is_planned_with_its_own_model_keys(tmp_path):
    fp32 = costplan.experiment_cost("demo", seeds=1, store=tmp_path / "s")
    bf16 = costplan.experiment_cost("demo", seeds=1, store=tmp_path / "s", precision="bf16")
    assert len(bf16.models) == len(fp32.models)
    assert not set(bf16.models) & set(fp32.models)  # never mixed with fp32 models in a store
    assert all(s.train.precision == "bf16" for s in bf16.specs.values())


def test_offline_gpu_gives_every_paper2_experiment_the_imagenet_family():
    """Issue 13 item 6: at ``offline-gpu`` every paper-2 claim has the EfficientNet-Lite0 family,
    where the paper's 8/255 attack works, besides the DTN family it shares with ``offline``."""
    from transferguard.papers.paper2 import PAPER

    for name in (d.name for d in PAPER.experiments):
        offline, gpu = (get_experiment(name).plan(s, 3) for s in ("offline", "offline-gpu"))
        lite = [f for f in gpu.families if f.arch == "efficientnet_lite0"]
        assert lite, name
        assert all(f.attack["eps"] == 8 / 255 and len(f.targets) == 2 for f in lite), name
        # the offline families are all still there, unchanged but for the scale's name (and
        # reno-adaptive's second EfficientNet target, which it leaves out offline for time)
        same = {f.family: f.to_json() for f in gpu.families}
        for f in offline.families:
            a, b = f.to_json(), same[f.family]
            assert all(t in b["targets"] for t in a["targets"]), (name, f.family)
            assert {**a, "scale": 0, "targets": 0} == {**b, "scale": 0, "targets": 0}, name


def test_offline_gpu_shares_every_offline_model(tmp_path):
    off = costplan.experiment_cost("reno-table7", scale="offline", seeds=1, store=tmp_path)
    gpu = costplan.experiment_cost("reno-table7", scale="offline-gpu", seeds=1, store=tmp_path)
    assert set(off.models) < set(gpu.models)


def test_offline_gpu_leaves_paper1_as_offline():
    from transferguard.papers.paper1 import PAPER

    for name in (d.name for d in PAPER.experiments):
        a, b = (get_experiment(name).plan(s, 3).to_json() for s in ("offline", "offline-gpu"))
        assert {**a, "scale": None} == {**b, "scale": None}, name


def test_cli_plan_offline_gpu_uses_the_h200_profile(capsys, tmp_path):
    code, out, err = run(capsys, "reproduce", "reno-fig3", "--scale", "offline-gpu", "--plan",
                         "--store", tmp_path / "store")
    assert code == 0, err
    assert "h200" in out and "efficientnet_lite0" in out and "GPU-hours" in out
    assert not (tmp_path / "store").exists()

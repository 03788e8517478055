"""Smoke test of benchmarks/ (run.py, harness.py, groups/): it imports, times real code side by
side and yields ratios.

No timing assertion here (timing limits belong to the benchmarks themselves): only that a tiny
benchmark runs end to end on the real attack code and produces finite, well-formed rows, that
the bare reference loops compute exactly what the library computes, and that the results files
are written. run.py is loaded by path (benchmarks/ is no installed package); it puts its own
folder on sys.path, so ``harness`` and ``groups`` import as plain modules after it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

RUN_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def run_py():
    spec = importlib.util.spec_from_file_location("tg_bench_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tg_bench_run"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench(run_py):
    """The shared harness (Row, Settings, interleaved, write_results, ...)."""
    return importlib.import_module("harness")


@pytest.fixture(scope="module")
def groups(run_py):
    """The group registry run.py uses: name → module with ``run(settings)``."""
    return run_py.GROUPS


@pytest.fixture(autouse=True)
def _restore_threads():
    """These tests pin torch to one thread; later modules must get the machine's count back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_group_registry_names_one_module_per_group(groups):
    """Every registered group is its own module ``groups.NAME`` with ``run`` and a docstring
    (a new group adds to the registry, so only the existing ones are named here)."""
    assert list(groups)[:5] == ["fgsm_sweep", "pgd", "train", "startup", "demo"]
    for name, module in groups.items():
        assert module.__name__ == f"groups.{name}" and callable(module.run) and module.__doc__
    assert not groups["demo"].DEFAULT  # opt-in: --demo or --only demo


def _tiny(bench):
    return bench.Settings(reps=1, warmup=0, fgsm_batch=4, fgsm_k=2, fgsm_targets=1,
                          pgd_batch=2, pgd_steps=2, use_torchattacks=False,
                          install_torchattacks=False)


def test_fgsm_sweep_benchmark_produces_ratios(bench, groups, tmp_path):
    torch.set_num_threads(1)
    rows = groups["fgsm_sweep"].run(_tiny(bench))
    assert [r.direction for r in rows] == ["<=", "<=", ">=", ">=", ">="]
    # The end-to-end speed-up is informational; the last row divides it by its ceiling.
    end_to_end, vs_ceiling = rows[3], rows[4]
    assert end_to_end.target is None and vs_ceiling.target == 0.95
    assert vs_ceiling.ratio == pytest.approx(end_to_end.ratio / vs_ceiling.reference)
    assert vs_ceiling.reference > 1.0  # the ceiling: crafting k gradients instead of one saves time
    for row in rows:
        assert math.isfinite(row.ratio) and row.ratio > 0
        assert row.ours > 0 and row.reference > 0
        assert row.status == "info" if row.target is None else row.status in ("PASS", "FAIL")
    # Without torchattacks the bare per-ε stand-in loop is used, and the row says so.
    assert "stand-in" in rows[2].reference_name
    bench.write_results({"fgsm_sweep": {"command": "test", "date": "now",
                                        "machine": bench.machine(), "load_before": 0.0,
                                        "load_after": 0.0, "rows": [r.__dict__ for r in rows]}},
                        tmp_path)
    data = json.loads((tmp_path / "latest.json").read_text())
    assert len(data["groups"]["fgsm_sweep"]["rows"]) == 5
    assert "| fgsm_sweep: sweep+eval vs physical limit |" in (tmp_path / "latest.md").read_text()


def test_bare_pgd_references_match_the_library(bench, groups):
    """The PGD benchmark is only fair if its bare loops do the library's exact math."""
    from transferguard.attacks import feature_attack, pgd

    torch.set_num_threads(1)
    pgd_group = groups["pgd"]
    model = bench.make_model("dtn").eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 4, 9])
    kw = dict(eps=8 / 255, steps=3, alpha=2 / 255)
    ours = pgd(model, x, y, kw["eps"], steps=3, step_size=kw["alpha"],
               generator=torch.Generator().manual_seed(5))
    bare = pgd_group.bare_pgd_ce(model, x, y, gen=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(ours, bare)
    ours = feature_attack(model, x, kw["eps"], steps=3, step_size=kw["alpha"], neuron=2,
                          generator=torch.Generator().manual_seed(5))
    bare = pgd_group.bare_pgd_feature(model, x, neuron=2, m=1000.0,
                                      gen=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(ours, bare)


def test_interleaved_timing_and_paired_ratio(bench):
    calls = []

    def case(name):
        def setup():
            return lambda: calls.append(name) or {"phase": 1.0}
        return setup

    runs = bench.interleaved({"a": case("a"), "b": case("b")}, reps=3, warmup=1, collect=False)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]  # alternating order
    assert [len(v) for v in runs.values()] == [3, 3]
    assert bench.paired_ratio(runs["a"], runs["b"], "phase") == 1.0
    row = bench.Row("x", 2.0, 1.0, "s", 2.0, "<=", 1.1, "ref")
    assert row.passed is False and row.status == "FAIL"
    assert bench.Row("x", 1.0, 1.0, "s", 1.2, ">=", 0.95, "ref").status == "PASS"


def test_startup_benchmark_times_one_line_errors(bench, groups):
    """The start-up rows time real error paths: each must end in exit 2 with one stderr line."""
    startup = groups["startup"]
    rows = startup.run(_tiny(bench))
    assert rows[0].benchmark.startswith("startup: --help") and rows[0].target is None
    assert len(rows) == 1 + len(startup.STARTUP_CASES)
    for row in rows[1:]:
        assert row.note == "exit 2, 1 stderr line(s)", row
        assert row.target == 1.0 and row.unit == "s" and row.ours > 0


def test_gpu_group_skips_without_cuda(bench, groups, monkeypatch):
    """The ``gpu`` group is registered, stays out of a plain run without CUDA, and on a machine
    without CUDA returns one info row saying it was skipped (it times nothing)."""
    gpu = groups["gpu"]
    assert gpu.__name__ == "groups.gpu"
    assert gpu.DEFAULT is torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine everywhere
    rows = gpu.run(_tiny(bench))
    assert len(rows) == 1
    (row,) = rows
    assert row.status == "info" and row.passed is None and row.target is None
    assert "skipped" in row.benchmark and "no CUDA" in row.note
    assert "| gpu: skipped (no CUDA) |" in bench.table(rows)


def test_gpu_group_code_path_runs_on_the_cpu(bench, groups, monkeypatch):
    """The CUDA code path, run on the CPU with CUDA faked present (tiny DTN, demo stubbed): the
    rows it reports on a GPU are well formed. Its figures mean nothing here."""
    gpu = groups["gpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu, "DEVICE", "cpu")
    monkeypatch.setattr(gpu, "TRAIN_CONFIGS", (("dtn", "DTN", 32, 4),))
    monkeypatch.setattr(gpu, "_demo_command",
                        lambda tmp, precision: [sys.executable, "-c", "pass"])
    torch.set_num_threads(1)
    s = bench.Settings(reps=1, warmup=0, fgsm_k=2, gpu_steps=2, gpu_fgsm_batch=4)
    rows = gpu.run(s)
    assert [r.benchmark for r in rows] == [
        "train DTN fp32 vs bare loop", "train DTN bf16 vs bare loop", "bf16 / fp32 speed-up DTN",
        "gpu fgsm_sweep: crafting vs 1 fwd+bwd",
        "gpu fgsm_sweep: crafting vs 1 fwd+bwd + k projections",
        "gpu demo fp32: wall time", "gpu demo bf16: wall time vs fp32"]
    assert [r.target for r in rows] == [0.9, 0.9, None, 1.2, None, None, None]
    for row in rows:
        assert math.isfinite(row.ratio) and row.ratio > 0 and row.ours > 0 and row.reference > 0
        assert row.passed is not False or row.target is not None, row  # nothing failed to run
    assert all("GPU utilisation" in r.note for r in rows[-2:])  # the demo rows say it


def test_gpu_group_runs_only_the_parts_asked_for(bench, groups, monkeypatch):
    """``--gpu-part fgsm`` (``Settings.gpu_parts``): only the FGSM-sweep rows, no training or demo
    (the GPU session's short re-measure after its experiments)."""
    gpu = groups["gpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu, "DEVICE", "cpu")
    monkeypatch.setattr(gpu, "_train_rows", lambda s: pytest.fail("training part ran"))
    monkeypatch.setattr(gpu, "_demo_rows", lambda: pytest.fail("demo part ran"))
    torch.set_num_threads(1)
    s = bench.Settings(reps=1, warmup=0, fgsm_k=2, gpu_fgsm_batch=4, gpu_parts=("fgsm",))
    assert [r.benchmark for r in gpu.run(s)] == [
        "gpu fgsm_sweep: crafting vs 1 fwd+bwd",
        "gpu fgsm_sweep: crafting vs 1 fwd+bwd + k projections"]


def test_gpu_sampler_parses_nvidia_smi_lines(groups):
    gpu = groups["gpu"]
    assert gpu.parse_gpu_samples("87, 10240\n 3, 512\n\n[N/A], 0\n") == [(87.0, 10240.0),
                                                                          (3.0, 512.0)]
    sampler = gpu.GpuSampler()
    sampler.samples = [(80.0, 2048.0), (40.0, 4096.0)]
    assert sampler.summary().startswith("GPU utilisation mean 60 % (peak 80 %), peak memory 4.0 GiB")

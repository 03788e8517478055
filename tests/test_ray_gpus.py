"""The Ray backend places training units on GPUs (scheduling only, nothing is trained).

A local Ray instance fakes two GPUs through its resources; a module-level fake worker entry
point records the GPU ids Ray assigned to each unit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from transferguard.errors import ConfigError
from transferguard.experiments.backends import resolve_gpus_per_unit, run_units
from transferguard.experiments.runner import Runner
from transferguard.experiments.spec import DataSpec, ModelSpec
from transferguard.experiments.store import Store

ray = pytest.importorskip("ray")


def fake_train_unit(spec: ModelSpec, store_root: str, device: str, data_root: str | None,
                    threads: int) -> str:
    """Record what Ray gave this unit (GPU ids, CUDA_VISIBLE_DEVICES, device) instead of training."""
    record = {"gpus": [int(g) for g in ray.get_gpu_ids()], "device": device,
              "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}
    (Path(store_root) / f"unit-{spec.key()}.json").write_text(json.dumps(record))
    return spec.key()


@pytest.fixture(scope="module")
def fake_gpu_ray():
    # Ray's workers inherit the environment; they import fake_train_unit from this file.
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), old]))
    try:
        ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
        yield
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _units(tmp_path: Path, gpus_per_unit: float) -> list[dict]:
    specs = [ModelSpec(DataSpec("ucidigits"), "dtn", seed=s) for s in range(4)]  # independent
    runner = Runner(Store(tmp_path), device="cpu", backend="ray", workers=2)
    run_units(runner, specs, train_unit=fake_train_unit, backend="ray", workers=2,
              gpus_per_unit=gpus_per_unit)
    assert runner.counters["trained"] == 4
    return [json.loads((tmp_path / f"unit-{s.key()}.json").read_text()) for s in specs]


@pytest.mark.parametrize("gpus_per_unit", [1.0, 0.5])
def test_every_ray_unit_gets_one_gpu(fake_gpu_ray, tmp_path, gpus_per_unit):
    records = _units(tmp_path, gpus_per_unit)
    for r in records:
        assert len(r["gpus"]) == 1 and r["gpus"][0] in {0, 1}, r
        assert r["visible"] == str(r["gpus"][0])  # Ray pins the worker to its GPU
        assert r["device"] == "cuda"  # ... which the worker then addresses as plain "cuda"


def test_gpus_per_unit_defaults_and_checks():
    assert resolve_gpus_per_unit(None, "cuda:0") == 1.0
    assert resolve_gpus_per_unit(None, "cpu") == 0.0
    assert resolve_gpus_per_unit(0.25, "cpu") == 0.25
    assert resolve_gpus_per_unit(2, "cuda") == 2.0
    for bad in (-1, 1.5):
        with pytest.raises(ConfigError):
            resolve_gpus_per_unit(bad, "cuda")

"""The local backend's GPU slots and the training step's host-sync-free loss sum (CPU-checkable).

No GPU is needed: the slot arithmetic takes the GPU count, free memory and cores as arguments,
and the pool's slot hand-out is checked with a fake worker entry point that records which
device each worker process was given.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from transferguard.errors import ConfigError
from transferguard.experiments.backends import (
    UNIT_GPU_MEMORY,
    _run_local,
    local_gpu_slots,
    units_per_gpu,
)
from transferguard.experiments.spec import DataSpec, ModelSpec

GIB = 2**30


def test_units_per_gpu_from_the_share_or_the_memory():
    assert units_per_gpu(0.25, 0, 16) == 4
    assert units_per_gpu(0.3, 0, 16) == 3
    assert units_per_gpu(1.0, 0, 16) == 1
    assert units_per_gpu(2.0, 0, 16) == 1  # a unit trains on one device
    # auto: memory-bound, then core-bound (one unit per two cores), never below one
    assert units_per_gpu(None, 3 * UNIT_GPU_MEMORY + 1, 64) == 3
    assert units_per_gpu(None, 139 * GIB, 16) == 8
    assert units_per_gpu(None, 1 * GIB, 16) == 1
    with pytest.raises(ConfigError):
        units_per_gpu(1.5, 0, 16)


def test_slots_spread_over_every_gpu_in_turn():
    free = [139 * GIB, 139 * GIB]
    assert local_gpu_slots("cuda", 0.5, None, n_gpus=2, free_bytes=free, cpus=16) == [
        "cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    # auto on 2 GPUs and 16 cores: 8 cores per GPU → 4 units each
    slots = local_gpu_slots("cuda", None, None, n_gpus=2, free_bytes=free, cpus=16)
    assert slots.count("cuda:0") == slots.count("cuda:1") == 4
    # the smallest free memory decides for all GPUs
    slots = local_gpu_slots("cuda", None, None, n_gpus=2, free_bytes=[139 * GIB, 9 * GIB], cpus=16)
    assert slots == ["cuda:0", "cuda:1"]


def test_a_named_gpu_or_explicit_workers():
    free = [139 * GIB] * 4
    assert local_gpu_slots("cuda:2", 0.5, None, n_gpus=4, free_bytes=free, cpus=16) == ["cuda:2"] * 2
    assert local_gpu_slots("cuda", None, 3, n_gpus=2, free_bytes=free[:2], cpus=16) == [
        "cuda:0", "cuda:1", "cuda:0"]
    with pytest.raises(ConfigError, match="no GPU"):
        local_gpu_slots("cuda", None, None, n_gpus=0, free_bytes=[], cpus=16)


def record_unit(spec: ModelSpec, store_root: str, device: str, data_root: str | None,
                threads: int) -> str:
    """Fake worker entry point: record this process's id and the device it was handed."""
    out = Path(store_root) / f"unit-{spec.key()}.json"
    out.write_text(json.dumps({"pid": os.getpid(), "device": device, "threads": threads}))
    return spec.key()


def test_each_worker_process_keeps_one_slot(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])))
    specs = [ModelSpec(DataSpec("ucidigits"), "dtn", seed=s) for s in range(8)]
    slots = ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    _run_local([specs[:4], specs[4:]], record_unit, (str(tmp_path), "cuda", None, 1), 4, slots)
    records = [json.loads((tmp_path / f"unit-{s.key()}.json").read_text()) for s in specs]
    by_pid: dict[int, set[str]] = {}
    for r in records:
        by_pid.setdefault(r["pid"], set()).add(r["device"])
    assert all(len(devs) == 1 for devs in by_pid.values())  # a process never changes GPU
    assert {d for devs in by_pid.values() for d in devs} <= {"cuda:0", "cuda:1"}
    assert len(by_pid) <= 4


def test_device_side_loss_sum_equals_the_float_sum():
    from transferguard.training.loop import TrainState

    losses = torch.rand(50, generator=torch.Generator().manual_seed(0)) * 3
    state = TrainState(optimizer=None, batches=None, adv_gen=None, main_end=0,  # type: ignore[arg-type]
                       loss_sum=0.123456789)
    expected = state.loss_sum
    for i, v in enumerate(losses):
        state.add_loss(v)
        expected += float(v)
        if i == 20:  # an evaluation in between reads and keeps summing from there
            state.flush_loss()
            assert state.loss_sum == expected
    state.flush_loss()
    assert state.loss_sum == expected  # exactly: the same float64 adds in the same order
    assert state.loss_count == 50


def test_batch_indices_on_a_device_follow_the_cpu_order():
    """On an accelerator the epoch's order is copied once and sliced there; the CPU generator
    decides the order either way (the meta device stands in for a GPU here)."""
    from transferguard.training.loop import _Batches

    cpu, dev = _Batches(10, 4, seed=3), _Batches(10, 4, seed=3)
    meta = torch.device("meta")
    for _ in range(5):  # crosses two epoch boundaries (10 // 4 = 2 batches per epoch)
        a, b = cpu.next(), dev.next(meta)
        assert b.device == meta and b.shape == a.shape
        assert torch.equal(cpu.order, dev.order) and (cpu.pos, cpu.epoch) == (dev.pos, dev.epoch)
    assert dev._order_on is not None and dev._order_on.device == meta
    dev.load_state_dict(cpu.state_dict())
    assert dev._order_on is None  # a resumed order is copied again

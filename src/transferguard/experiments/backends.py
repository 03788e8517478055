"""Run training units in parallel: in this process, in local processes, or on a Ray cluster.

A unit is one :class:`ModelSpec`. Units are run in waves so that a parent is always finished (and
in the store) before its children start; every worker opens the same :class:`Store`, trains its
unit with a private :class:`Runner` and writes the checkpoint atomically. The calling runner then
loads the finished models from the store, so all backends produce the same table.

This module only schedules: the runner hands :func:`run_units` itself and its worker entry point
(``train_unit``), so the backends never import the runner.

GPUs: on the Ray backend each unit of a CUDA run requests ``gpus_per_unit`` GPUs (default 1; a
fraction such as 0.25 lets four units share one GPU), so Ray schedules the grid over every GPU
of a cluster of several machines. Ray sets ``CUDA_VISIBLE_DEVICES`` in the worker, which then
trains on device ``cuda`` (the GPU it was given). The local backend does not place units on GPUs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from ..errors import ConfigError
from .spec import ModelSpec

log = logging.getLogger(__name__)

BACKENDS = ("serial", "local", "ray")

#: A worker entry point, ``train_unit(spec, store_root, device, data_root, threads) -> key``: train
#: (or find) one model in the shared store. A module-level function, as it is pickled (by
#: reference) into spawned processes and Ray workers.
TrainUnit = Callable[[ModelSpec, str, str, str | None, int], str]


def default_workers() -> int:
    """Half the cores (each worker then uses two threads); 1 on a 2-core machine."""
    return max(1, (os.cpu_count() or 1) // 2)


def waves(specs: Iterable[ModelSpec], is_done) -> list[list[ModelSpec]]:
    """Unfinished specs (parents included), grouped so each wave only depends on earlier ones."""
    level: dict[str, int] = {}
    by_key: dict[str, ModelSpec] = {}

    def visit(spec: ModelSpec) -> int:
        key = spec.key()
        if key in level:
            return level[key]
        parent = spec.parent
        if parent is None or parent.method == "pretrained" or is_done(parent):
            lv = 0
        else:
            lv = visit(parent) + 1
        level[key], by_key[key] = lv, spec
        return lv

    for s in specs:
        if s.method != "pretrained" and not is_done(s):
            visit(s)
    out: list[list[ModelSpec]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for key, lv in level.items():
        out[lv].append(by_key[key])
    return out


def resolve_gpus_per_unit(gpus_per_unit: float | None, device: Any) -> float:
    """GPUs a Ray unit requests: ``gpus_per_unit`` checked, None meaning 1 on CUDA and 0 else.

    Ray accepts a fraction up to 1 (units share a GPU) or a whole number of GPUs.
    """
    if gpus_per_unit is None:
        return 1.0 if getattr(device, "type", str(device).split(":")[0]) == "cuda" else 0.0
    g = float(gpus_per_unit)
    if g < 0 or (g > 1 and not g.is_integer()):
        raise ConfigError(f"--gpus-per-unit must be a fraction in [0, 1] or a whole number, got "
                          f"{gpus_per_unit}")
    return g


def run_units(runner: Any, specs: Iterable[ModelSpec], *, train_unit: TrainUnit,
              backend: str = "serial", workers: int | None = None, address: str | None = None,
              gpus_per_unit: float | None = None) -> None:
    """Make sure every spec (and its parents) is trained and stored, using ``backend``: in this
    process with ``runner.model``, or with ``train_unit`` in each worker.

    ``gpus_per_unit`` (Ray only): GPUs each unit requests, see :func:`resolve_gpus_per_unit`.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    gpus = resolve_gpus_per_unit(gpus_per_unit, runner.device)
    plan = waves(specs, lambda s: runner.store.has_model(s.key()))
    n_units = sum(len(w) for w in plan)
    if n_units == 0:
        return
    workers = workers or default_workers()
    if backend == "serial" or (backend == "local" and workers == 1):
        for wave in plan:
            for spec in wave:
                runner.model(spec)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    args = (str(runner.store.root), str(runner.device), runner.data_root, threads)
    log.info("training %d models in %d waves on the %s backend (%d workers × %d threads)",
             n_units, len(plan), backend, workers, threads)
    if backend == "local":
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            for wave in plan:
                list(pool.map(train_unit, wave, *[[a] * len(wave) for a in args]))
    else:
        if gpus > 0:  # Ray's CUDA_VISIBLE_DEVICES makes the assigned GPU the worker's "cuda"
            args = (args[0], "cuda", *args[2:])
        _run_ray(plan, train_unit, args, address, workers, gpus)
    runner.counters["trained"] += n_units


def _run_ray(plan: list[list[ModelSpec]], train_unit: TrainUnit, args: tuple, address: str | None,
             workers: int, gpus_per_unit: float = 0.0) -> None:
    """Each wave's units as Ray tasks of one CPU and ``gpus_per_unit`` GPUs each."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'transferguard[ray]'") from None
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        if gpus_per_unit > 0:
            have = ray.cluster_resources().get("GPU", 0)
            log.log(logging.INFO if have >= gpus_per_unit else logging.WARNING,
                    "each Ray unit requests %g GPU(s); the cluster has %g (units wait until "
                    "enough GPUs join)", gpus_per_unit, have)
        remote = ray.remote(num_cpus=1, num_gpus=gpus_per_unit)(train_unit)
        for wave in plan:
            ray.get([remote.remote(spec, *args) for spec in wave])
    finally:
        if started:
            ray.shutdown()

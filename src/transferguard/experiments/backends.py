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
trains on device ``cuda`` (the GPU it was given).

The local backend on a CUDA run gives each worker process one **GPU slot** for its whole life
(:func:`local_gpu_slots`): a fixed number of units per GPU, spread over every GPU of the machine
(or all on ``cuda:N`` when the run names one), instead of a CPU-sized pool whose workers all
land on GPU 0. ``gpus_per_unit`` means the same as on Ray (0.25: four units share a GPU); left
out, the units per GPU are as many as fit in its free memory at :data:`UNIT_GPU_MEMORY` each,
at most one per two CPU cores.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
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


#: GPU memory a training unit is assumed to need when the local backend sizes its units per GPU
#: (the offline models need well under 1 GiB; a paper-scale ResNet-101 at batch 64 about 10).
UNIT_GPU_MEMORY = 8 * 2**30


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


def units_per_gpu(gpus_per_unit: float | None, free_bytes: int, cpus_per_gpu: int) -> int:
    """Training units one GPU runs at once on the local backend (at least 1).

    ``gpus_per_unit`` given: ``1 / gpus_per_unit`` units (a whole number of GPUs or 0: one unit,
    as a unit trains on one device). Else as many as fit in ``free_bytes`` at
    :data:`UNIT_GPU_MEMORY` each, at most one per two of the GPU's CPU cores (each worker needs
    a host core to feed it).
    """
    if gpus_per_unit is not None:
        g = resolve_gpus_per_unit(gpus_per_unit, "cuda")
        return max(1, int(1 / g + 1e-9)) if 0 < g < 1 else 1
    return max(1, min(free_bytes // UNIT_GPU_MEMORY, cpus_per_gpu // 2))


def local_gpu_slots(device: Any, gpus_per_unit: float | None, workers: int | None, *,
                    n_gpus: int | None = None, free_bytes: list[int] | None = None,
                    cpus: int | None = None) -> list[str]:
    """The device of each local worker of a CUDA run (one entry per worker process).

    ``device`` ``cuda``: every GPU of the machine, ``units_per_gpu`` slots each, GPU by GPU in
    turn (``["cuda:0", "cuda:1", "cuda:0", ...]``); ``cuda:N``: that GPU only. An explicit
    ``workers`` (without ``gpus_per_unit``) is the total, dealt over the GPUs in the same turn.
    ``n_gpus``, ``free_bytes`` (per GPU) and ``cpus`` default to this machine's.
    """
    text = str(device)
    if n_gpus is None or free_bytes is None:
        import torch  # only a CUDA run gets here

        n_gpus = torch.cuda.device_count()
        free_bytes = [torch.cuda.mem_get_info(i)[0] for i in range(n_gpus)]
    gpus = [int(text.split(":")[1])] if ":" in text else list(range(n_gpus))
    if not gpus:
        raise ConfigError("a CUDA run found no GPU")
    cpus = cpus or os.cpu_count() or 1
    if workers is not None and gpus_per_unit is None:
        total = max(1, workers)
    else:
        per = units_per_gpu(gpus_per_unit, min(free_bytes[i] for i in gpus),
                            max(1, cpus // len(gpus)))
        total = per * len(gpus)
    return [f"cuda:{gpus[i % len(gpus)]}" for i in range(total)]


#: The GPU slot of this local worker process (set once by :func:`_claim_slot`).
_SLOT: str | None = None


def _claim_slot(slots: Any) -> None:
    """Worker initializer: take one device from the shared queue and keep it for life (none
    left — a replacement process, say — : the run's device)."""
    global _SLOT
    try:
        _SLOT = slots.get(timeout=30)
    except queue.Empty:
        _SLOT = None


def _on_slot(train_unit: TrainUnit, spec: ModelSpec, store_root: str, device: str,
             data_root: str | None, threads: int) -> str:
    """``train_unit`` on this worker's GPU slot (``device`` when it has none)."""
    return train_unit(spec, store_root, _SLOT or device, data_root, threads)


def _run_local(plan: list[list[ModelSpec]], train_unit: TrainUnit, args: tuple, workers: int,
               slots: list[str] | None) -> None:
    """Each wave's units over a pool of spawned processes (one per GPU slot on a CUDA run)."""
    ctx = get_context("spawn")
    kwargs: dict[str, Any] = {}
    if slots:
        queue = ctx.Queue()
        for s in slots:
            queue.put(s)
        kwargs = {"initializer": _claim_slot, "initargs": (queue,)}
        train_unit = functools.partial(_on_slot, train_unit)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, **kwargs) as pool:
        for wave in plan:
            list(pool.map(train_unit, wave, *[[a] * len(wave) for a in args]))


def _is_cuda(device: Any) -> bool:
    return getattr(device, "type", str(device).split(":")[0]) == "cuda"


def run_units(runner: Any, specs: Iterable[ModelSpec], *, train_unit: TrainUnit,
              backend: str = "serial", workers: int | None = None, address: str | None = None,
              gpus_per_unit: float | None = None) -> None:
    """Make sure every spec (and its parents) is trained and stored, using ``backend``: in this
    process with ``runner.model``, or with ``train_unit`` in each worker.

    ``gpus_per_unit``: GPUs each unit requests on Ray (:func:`resolve_gpus_per_unit`); on the
    local backend of a CUDA run, the share of a GPU each unit gets (:func:`local_gpu_slots`).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    gpus = resolve_gpus_per_unit(gpus_per_unit, runner.device)
    plan = waves(specs, lambda s: runner.store.has_model(s.key()))
    n_units = sum(len(w) for w in plan)
    if n_units == 0:
        return
    slots = None
    if backend == "local" and _is_cuda(runner.device):
        slots = local_gpu_slots(runner.device, gpus_per_unit, workers)
        workers = len(slots)
    workers = workers or default_workers()
    if backend == "serial" or (backend == "local" and workers == 1):
        for wave in plan:
            for spec in wave:
                runner.model(spec)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    args = (str(runner.store.root), str(runner.device), runner.data_root, threads)
    log.info("training %d models in %d waves on the %s backend (%d workers × %d threads%s)",
             n_units, len(plan), backend, workers, threads,
             f", GPU slots {', '.join(sorted(set(slots)))}" if slots else "")
    if backend == "local":
        _run_local(plan, train_unit, args, workers, slots)
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

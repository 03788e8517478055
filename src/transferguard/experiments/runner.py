"""Train-or-load models and craft-once adversarial batches, backed by the :class:`Store`.

The runner is the only place that turns specs into trained models. It resolves a model's parent
first (a source model is trained once for every target that needs it), tries the hyper-parameter
grid and keeps the best on the validation split, and saves the winner as a checkpoint keyed by
the spec hash. In-memory memos make a model or a crafted batch used twice in one run cost once.

Faults: a store entry that cannot be read (truncated, garbage, checksum mismatch) is moved aside
and recomputed, an unusable training state restarts its trial from scratch, and every entry is
computed under its store lock (re-checked once held), so concurrent runs compute it once. Locks
are taken in one order only (evaluation → crafted batch → model → its parent), so they cannot
deadlock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from .._allocator import tune_malloc
from ..data import Domain, load_domain
from ..errors import CheckpointError, StoreError
from ..models import TGModel, create_model, load_checkpoint, read_sidecar, save_checkpoint
from ..training.convergence import converged, plateaued, unfinished
from ..utils import resolve_device
from .backends import run_units
from .spec import DataSpec, ModelSpec, canonical_hash
from .store import Store

log = logging.getLogger(__name__)

PRETRAINED = "pretrained"


class Runner:
    """Resolves :class:`ModelSpec` objects to trained models, caching everything it can."""

    def __init__(self, store: Store | None = None, *, device: str = "auto",
                 progress: bool = True, data_root: str | None = None, backend: str = "serial",
                 workers: int | None = None, address: str | None = None,
                 gpus_per_unit: float | None = None) -> None:
        self.store = store or Store()
        self.backend, self.workers, self.address = backend, workers, address
        #: GPUs each Ray training unit requests (None: 1 on CUDA, 0 on the CPU; see run_units).
        self.gpus_per_unit = gpus_per_unit
        self.device = resolve_device(device)
        self.progress = progress
        self.data_root = data_root
        self._models: dict[str, tuple[TGModel, dict[str, Any]]] = {}
        self._domains: dict[DataSpec, Domain] = {}
        self._crafted: dict[str, Any] = {}
        self.counters = {"trained": 0, "loaded": 0, "crafted": 0, "eval_cached": 0, "evaluated": 0}
        #: Keys of every model an experiment asked for (via :meth:`train_all` or :meth:`model`).
        self.used: set[str] = set()

    # ------------------------------------------------------------------ data
    def domain(self, data: DataSpec) -> Domain:
        if data not in self._domains:
            self._domains[data] = load_domain(data.domain, root=self.data_root, **data.load_kwargs())
        return self._domains[data]

    # ----------------------------------------------------------------- models
    def model(self, spec: ModelSpec) -> tuple[TGModel, dict[str, Any]]:
        """The trained model of ``spec`` (trained now, loaded from the store, or memoised)."""
        key = spec.key()
        if key in self._models:
            return self._models[key]
        if spec.method == PRETRAINED:
            model = create_model(spec.arch, int(spec.method_options.get("num_classes", 1000)),
                                 pretrained=spec.pretrained or True)
            meta = {"key": key, "arch": spec.arch, "method": PRETRAINED, "pretrained": spec.pretrained}
        else:
            found = self._stored_model(spec)
            if found is None:
                with self.store.lock(key):  # another process may be training it: wait, re-check
                    found = self._stored_model(spec, discard=True) or self._train(spec, key)
            model, meta = found
        model = model.to(self.device).eval()
        self._models[key] = (model, meta)
        return model, meta

    def _stored_model(self, spec: ModelSpec, *, discard: bool = False
                      ) -> tuple[TGModel, dict[str, Any]] | None:
        """The stored model of ``spec``; None when absent or unusable (moved aside with ``discard``)."""
        key = spec.key()
        if not self.store.has_model(key):
            return None
        try:
            found = load_checkpoint(self.store.model_path(key))
        except (CheckpointError, OSError, ValueError) as err:
            if discard:
                self.store.discard(*self.store.model_files(key), reason=str(err))
            return None
        self.counters["loaded"] += 1
        log.info("loaded %s from the store (%s)", spec.describe(), key)
        return found

    def meta(self, spec: ModelSpec) -> dict[str, Any]:
        """A finished model's sidecar (selected hyper-parameters, validation accuracy) without
        loading its weights; trains the model first if needed."""
        key = spec.key()
        if key in self._models:
            return self._models[key][1]
        if spec.method == PRETRAINED:
            return {}
        if self.store.has_model(key):
            with suppress(CheckpointError):  # unreadable: model() moves it aside and retrains
                return read_sidecar(self.store.model_path(key))
        return self.model(spec)[1]

    def hp_columns(self, spec: ModelSpec) -> dict[str, Any]:
        """Columns recording the hyper-parameter selection of a model (paper protocol)."""
        meta = self.meta(spec)
        return {"lr": meta.get("selected_lr"), "weight_decay": meta.get("selected_weight_decay"),
                "val_acc": meta.get("best_val_acc"), "plateaued": converged(meta)}

    def upstream_unfinished(self, spec: ModelSpec, *crafted_on: ModelSpec) -> str:
        """The models that rows measuring ``spec`` rest on besides ``spec`` itself — its
        ancestors, and each model an attack was ``crafted_on`` with that model's ancestors —
        that were still improving when their budgets ended: the ``upstream_unfinished`` column
        (labels joined by "; ", "" when every one plateaued or is a public model)."""
        behind = [*spec.ancestors(), *(s for c in crafted_on for s in (c, *c.ancestors()))]
        unique = {s.key(): s for s in behind if s.key() != spec.key()}
        return unfinished(self.meta(s) for s in unique.values())

    def _train(self, spec: ModelSpec, key: str) -> tuple[TGModel, dict[str, Any]]:
        parent = self.model(spec.parent)[0] if spec.parent is not None else None
        dom = self.domain(spec.data)
        grid = spec.hp_grid or ((spec.train.lr, spec.train.weight_decay),)
        best: tuple[float, Any, float, float] | None = None
        trials = []
        t0 = time.perf_counter()
        for i, (lr, wd) in enumerate(grid):
            log.info("training %s (lr=%g, wd=%g) [%d/%d]", spec.describe(), lr, wd, i + 1, len(grid))
            result = self._fit_trial(spec, dom, parent, lr, wd, self.store.partial_path(f"{key}-{i}"))
            trials.append({"lr": lr, "weight_decay": wd, "best_val_acc": result.best_val_acc,
                           "iterations": result.iterations_run})
            if best is None or result.best_val_acc > best[0]:
                best = (result.best_val_acc, result, lr, wd)
        assert best is not None
        val_acc, result, lr, wd = best
        meta = {
            "key": key, "spec": spec.to_dict(), "label": spec.label, "domain": spec.data.domain,
            "classes": dom.classes, "method": spec.method, "seed": spec.seed,
            "parent": spec.parent.key() if spec.parent is not None else None,
            "selected_lr": lr, "selected_weight_decay": wd, "best_val_acc": val_acc,
            "best_iteration": result.best_iteration, "iterations_run": result.iterations_run,
            "plateaued": plateaued(result.history, len(dom.val.y) or None),
            "n_val": len(dom.val.y),
            # the selected trial's validation curve: [iteration, accuracy, phase]
            "val_history": [[h["iteration"], h["val_acc"], h.get("phase", "main")]
                            for h in result.history if h.get("val_acc") is not None],
            "data_sha256": dom.digest(),
            "hp_trials": trials, "train_seconds": round(time.perf_counter() - t0, 2),
        }
        try:
            with self.store.writing():
                save_checkpoint(result.model, self.store.model_path(key), meta)
        except StoreError:
            for path in self.store.model_files(key):  # no half entry (weights without sidecar)
                with suppress(OSError):
                    path.unlink(missing_ok=True)
            raise
        with self.store.writing():
            for i in range(len(grid)):
                self.store.partial_path(f"{key}-{i}").unlink(missing_ok=True)
        self.counters["trained"] += 1
        return result.model, meta

    def _fit_trial(self, spec: ModelSpec, dom: Domain, parent: TGModel | None, lr: float,
                   wd: float, partial: Path) -> Any:
        """Train one grid point, resuming from ``partial`` when present. An unusable state
        (corrupt, or from another config) is moved aside and the trial restarts from scratch."""
        from ..training import train_one

        # spec.train mirrors TrainConfig's fields, precision (fp32 / bf16) included
        settings = {**asdict(spec.train), "lr": lr, "weight_decay": wd, "device": str(self.device),
                    "progress": self.progress, "checkpoint_path": str(partial),
                    "desc": spec.describe()}
        while True:
            try:  # the training state is saved at every evaluation: store errors while fitting
                return train_one(spec.arch, spec.method, dom.train, dom.val, settings,
                                 seed=spec.seed, num_classes=dom.num_classes, parent=parent,
                                 pretrained=spec.pretrained if spec.parent is None else None,
                                 method_options=spec.method_options,
                                 fit_context=self.store.writing)
            except CheckpointError as err:
                if not partial.exists():
                    raise
                self.store.discard(partial, reason=str(err))

    def train_all(self, specs: list[ModelSpec]) -> None:
        """Train every spec not yet in the store, in parallel on the runner's backend."""
        self.used.update(s.key() for s in specs)
        run_units(self, specs, train_unit=_train_unit, backend=self.backend, workers=self.workers,
                  address=self.address, gpus_per_unit=self.gpus_per_unit)

    # ------------------------------------------------------------ crafting
    def crafted(self, key_parts: dict[str, Any], craft: Callable[[], Any]) -> Any:
        """A crafted adversarial batch (a tensor, or a dict ε → tensor), crafted once and kept in
        memory and in the store, so every model and every later run evaluates the same batch."""
        key = canonical_hash(key_parts)
        if key in self._crafted:
            return self._crafted[key]
        stored = self.store.get_crafted(key)
        if stored is None:
            with self.store.lock(f"crafted-{key}"):  # re-check: another process may have crafted it
                stored = self.store.get_crafted(key, discard=True)
                if stored is None:
                    value = craft()
                    self.counters["crafted"] += 1
                    stored = ({"x": value} if isinstance(value, torch.Tensor)
                              else {repr(float(k)): v for k, v in value.items()})
                    self.store.put_crafted(key, stored)
        value = stored["x"] if set(stored) == {"x"} else {float(k): v for k, v in stored.items()}
        self._crafted[key] = value
        return value

    def cached_eval(self, spec: dict[str, Any], compute: Callable[[], list[dict[str, Any]]]
                    ) -> list[dict[str, Any]]:
        """Rows of an evaluation unit: from the store when finished before, else computed and stored."""
        key = canonical_hash(spec)
        rows = self.store.get_eval(key)
        if rows is None:
            with self.store.lock(f"eval-{key}"):  # re-check: another process may have computed it
                rows = self.store.get_eval(key, discard=True)
                if rows is None:
                    rows = compute()
                    self.store.put_eval(key, spec, rows)
                    self.counters["evaluated"] += 1
                    return rows
        self.counters["eval_cached"] += 1
        return rows


def _train_unit(spec: ModelSpec, store_root: str, device: str, data_root: str | None,
                threads: int) -> str:
    """Worker entry point of the parallel backends (:data:`backends.TrainUnit`): train (or find)
    one model in the shared store with a private runner; returns its key."""
    tune_malloc()  # a fresh worker process: same allocator settings as the CLI
    torch.set_num_threads(threads)
    Runner(Store(store_root), device=device, progress=False, data_root=data_root).model(spec)
    return spec.key()


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device

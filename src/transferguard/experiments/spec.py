"""Declarative, hashable descriptions of what to train and what to measure.

A :class:`ModelSpec` fully determines a trained model: domain and sampling, architecture,
transfer method and its options, the model it starts from (``parent``), training
hyper-parameters and seed. Its :meth:`~ModelSpec.key` is a hash of that resolved description,
so the runner trains each distinct model once and finds it again on the next run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

SPEC_VERSION = 1


def canonical_hash(obj: Any, length: int = 16) -> str:
    """Stable hex digest of a JSON-serialisable object (keys sorted, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class DataSpec:
    """Which domain and how much of it: per-class caps, image size, validation fraction."""

    domain: str
    size: int = 32
    n_train_per_class: int | None = None
    n_test_per_class: int | None = None
    val_fraction: float = 0.1
    split_seed: int = 0

    def load_kwargs(self) -> dict[str, Any]:
        return {"size": self.size, "n_train_per_class": self.n_train_per_class,
                "n_test_per_class": self.n_test_per_class, "val_fraction": self.val_fraction,
                "seed": self.split_seed}

    def test_identity(self) -> dict[str, Any]:
        """The fields that decide the test split.

        ``load_domain`` draws the test subset from its own seeded stream, independently of the
        training budget and validation fraction, so batches crafted on test images can be shared
        by targets that differ only in those (e.g. Table 5's 33 % / 66 % / 100 % of the labels).
        """
        return {"domain": self.domain, "size": self.size, "n_test_per_class": self.n_test_per_class,
                "split_seed": self.split_seed}


@dataclass(frozen=True)
class TrainSpec:
    """The result-determining part of :class:`transferguard.training.TrainConfig`.

    Exactly TrainConfig's fields minus its ``VOLATILE`` ones (device, progress, ...) and ``seed``
    (which lives on :class:`ModelSpec`), with plain dicts for ``swa`` / ``adv_train`` so the spec
    hashes as JSON; a test keeps the two field lists in step.

    ``precision`` ("fp32" or "bf16", :data:`transferguard.training.PRECISIONS`): a bf16-trained
    model is a different model, so it is part of the key, but only when it is not "fp32" —
    every fp32 spec keeps the key it had before the field existed (stores and results tables
    hold those keys).
    """

    epochs: int | None = 10
    iterations: int | None = None
    batch_size: int = 128
    lr: float = 0.01
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: str = "constant"
    patience: int | None = None
    eval_every: int | None = None
    head_weight_decay: float | None = None
    swa: dict | None = None
    adv_train: dict | None = None
    precision: str = "fp32"


#: Names of :class:`TrainSpec`'s fields (a plan stores each TrainSpec as a dict of these).
TRAIN_FIELDS = frozenset(f.name for f in fields(TrainSpec))


@dataclass(frozen=True)
class ModelSpec:
    """Everything that determines one trained model."""

    data: DataSpec
    arch: str
    method: str = "scratch"
    parent: ModelSpec | None = None
    pretrained: str | None = None
    method_options: dict = field(default_factory=dict)
    train: TrainSpec = field(default_factory=TrainSpec)
    hp_grid: tuple[tuple[float, float], ...] = ()
    seed: int = 0
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Resolved description; the parent appears as its own full description."""
        d = asdict(self)
        d["parent"] = self.parent.to_dict() if self.parent is not None else None
        if d["train"]["precision"] == "fp32":  # the default: keys as before the field existed
            del d["train"]["precision"]
        d.pop("label")  # a display name never changes what is trained
        d["version"] = SPEC_VERSION
        return d

    def key(self) -> str:
        return canonical_hash(self.to_dict())

    def with_(self, **changes: Any) -> ModelSpec:
        return replace(self, **changes)

    def with_precision(self, precision: str) -> ModelSpec:
        """This spec with ``precision`` for itself and every trained ancestor."""
        parent = self.parent.with_precision(precision) if self.parent is not None else None
        return replace(self, train=replace(self.train, precision=precision), parent=parent)

    def ancestors(self) -> list[ModelSpec]:
        """The parent, its parent, … (nearest first)."""
        out, spec = [], self.parent
        while spec is not None:
            out.append(spec)
            spec = spec.parent
        return out

    def describe(self) -> str:
        base = self.label or f"{self.method}:{self.data.domain}"
        return f"{base} [{self.arch}, seed {self.seed}]"


def plan_with_precision(plan: Any, precision: str) -> Any:
    """``plan`` with every TrainSpec dict in it set to ``precision``.

    A plan stores each :class:`TrainSpec` as a dict of its fields (``asdict``); those dicts —
    recognised by their keys, with or without ``precision`` — get ``precision`` when it is not
    "fp32" and lose the key when it is, so an fp32 plan (and its ``spec.json``) is the same as
    before the field existed. Every spec an experiment builds from the returned plan then
    trains (and is keyed) at that precision: models, crafted batches and evaluation units of a
    bf16 run never mix with an fp32 run's in a shared store. A typed plan
    (:mod:`transferguard.papers`) goes through its JSON and comes back typed.
    """
    if hasattr(plan, "to_json"):
        return type(plan).from_json(plan_with_precision(plan.to_json(), precision))
    if isinstance(plan, dict):
        if plan and set(plan) in (TRAIN_FIELDS, TRAIN_FIELDS - {"precision"}):
            base = {k: v for k, v in plan.items() if k != "precision"}
            return base if precision == "fp32" else {**base, "precision": precision}
        return {k: plan_with_precision(v, precision) for k, v in plan.items()}
    if isinstance(plan, list | tuple):
        return type(plan)(plan_with_precision(v, precision) for v in plan)
    return plan


def plan_precision(plan: Any) -> str:
    """The precision a plan's TrainSpec dicts ask for ("fp32" when none says otherwise); a typed
    plan's are read from its JSON."""
    if hasattr(plan, "to_json"):
        return plan_precision(plan.to_json())
    if isinstance(plan, dict):
        if plan and set(plan) == TRAIN_FIELDS:
            return str(plan["precision"])
        found = {plan_precision(v) for v in plan.values()}
    elif isinstance(plan, list | tuple):
        found = {plan_precision(v) for v in plan}
    else:
        return "fp32"
    found.discard("fp32")
    return found.pop() if found else "fp32"

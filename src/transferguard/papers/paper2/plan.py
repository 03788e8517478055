"""The typed plan of a paper-2 experiment: one :class:`Family` (a source model and its targets)
per row group, what :func:`~.run.run_families` computes.

A :class:`Paper2Plan` is built in :mod:`~.specs` (each family by :func:`~.run.make_plan`),
written to a run folder as :meth:`Paper2Plan.to_json` (``spec.json``) and read back with
:meth:`Paper2Plan.from_json`. Target domains, training budgets, the attack and the suite budget
stay JSON dicts (of :class:`~transferguard.experiments.spec.DataSpec` /
:class:`~transferguard.experiments.spec.TrainSpec` fields, attack settings): they enter cache
keys and :func:`~transferguard.experiments.spec.plan_with_precision` as such. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Source:
    """The public source model: ``pretrained`` (``arch`` with ``weights``: True for the default
    weights, or a path) or ``trained`` here (``arch`` on ``data`` with ``train``)."""

    kind: str
    arch: str
    weights: str | bool | None = None
    data: dict[str, Any] | None = None
    train: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.kind == "trained":
            return {"kind": self.kind, "arch": self.arch, "data": self.data, "train": self.train}
        return {"kind": self.kind, "arch": self.arch, "weights": self.weights}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Source:
        return cls(d["kind"], d["arch"], d.get("weights"), d.get("data"), d.get("train"))


@dataclass(frozen=True)
class MethodRow:
    """One method row: a display label, a registered method, its options and training budget."""

    label: str
    method: str
    options: dict[str, Any]
    train: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "method": self.method, "options": self.options,
                "train": self.train}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MethodRow:
        return cls(d["label"], d["method"], d["options"], d["train"])


@dataclass(frozen=True)
class Family:
    """One source model's grid: every method row on every target, architecture and seed.

    ``eps_sweep``: further ε (pixel units) for the attack and the noise control; ``suite``: an
    attack budget's settings (then the transfer suite runs too), None for plans without one
    (their JSON has no ``suite`` key, so their cache keys stay as they were).
    """

    experiment: str
    scale: str
    seeds: tuple[int, ...]
    source: Source
    arch: str
    archs: tuple[str, ...]
    targets: tuple[dict[str, Any], ...]
    methods: tuple[MethodRow, ...]
    attack: dict[str, Any]
    eps_sweep: tuple[float, ...] = ()
    n_test: int | None = None
    distances: bool = True
    feature_loss: bool = False
    notes: str = ""
    suite: dict[str, Any] | None = None
    family: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"experiment": self.experiment, "scale": self.scale, "seeds": list(self.seeds),
               "source": self.source.to_json(), "arch": self.arch, "archs": list(self.archs),
               "targets": list(self.targets), "methods": [m.to_json() for m in self.methods],
               "attack": self.attack, "eps_sweep": list(self.eps_sweep), "n_test": self.n_test,
               "distances": self.distances, "feature_loss": self.feature_loss,
               "notes": self.notes}
        if self.suite is not None:
            out["suite"] = self.suite
        if self.family is not None:
            out["family"] = self.family
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Family:
        return cls(
            experiment=d["experiment"], scale=d["scale"], seeds=tuple(d["seeds"]),
            source=Source.from_json(d["source"]), arch=d["arch"], archs=tuple(d["archs"]),
            targets=tuple(d["targets"]), methods=tuple(MethodRow.from_json(m) for m in d["methods"]),
            attack=d["attack"], eps_sweep=tuple(d.get("eps_sweep") or ()), n_test=d["n_test"],
            distances=d["distances"], feature_loss=d["feature_loss"], notes=d.get("notes", ""),
            suite=d.get("suite"), family=d.get("family"))


@dataclass(frozen=True)
class Paper2Plan:
    """The families of one paper-2 experiment."""

    experiment: str
    scale: str
    families: tuple[Family, ...]
    notes: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON data of ``spec.json`` (lists for tuples)."""
        return {"experiment": self.experiment, "scale": self.scale,
                "families": [f.to_json() for f in self.families], "notes": self.notes}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Paper2Plan:
        return cls(d["experiment"], d["scale"], tuple(Family.from_json(f) for f in d["families"]),
                   d.get("notes", ""))

    @property
    def seed_list(self) -> list[int]:
        return list(self.families[0].seeds) if self.families else []

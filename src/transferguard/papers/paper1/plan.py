"""The typed plan of a paper-1 experiment: what :func:`~.run.run_transfer_grid` computes.

A :class:`Paper1Plan` is built by :func:`~.run.make_plan` (the figures' plans are in
:mod:`~.specs`), written to a run folder as :meth:`Paper1Plan.to_json` (``spec.json``) and read
back with :meth:`Paper1Plan.from_json`. Domains (``A``, ``B``, ``C``) and training budgets
(``train``) stay JSON dicts of :class:`~transferguard.experiments.spec.DataSpec` /
:class:`~transferguard.experiments.spec.TrainSpec` fields: they enter cache keys and
:func:`~transferguard.experiments.spec.plan_with_precision` as such. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    """One (Domain A, Domain B, optional Domain C) task; ``vary`` is the ablation's x value;
    ``train``: budgets of this task that replace the plan's for the same roles (a source
    domain or an architecture that needs longer to converge)."""

    task: str
    arch: str
    A: dict[str, Any]
    B: dict[str, Any]
    C: dict[str, Any] | None
    vary: Any = None
    train: dict[str, dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"task": self.task, "arch": self.arch, "A": self.A, "B": self.B, "C": self.C}
        if self.vary is not None:
            out["vary"] = self.vary
        if self.train:
            out["train"] = self.train
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Task:
        return cls(d["task"], d["arch"], d["A"], d["B"], d["C"], d.get("vary"), d.get("train"))


@dataclass(frozen=True)
class Paper1Plan:
    """Tasks × strategies × seeds, FGSM at ``eps`` (pixel units; ``eps_255`` as quoted)."""

    experiment: str
    scale: str
    seeds: tuple[int, ...]
    tasks: tuple[Task, ...]
    strategies: tuple[str, ...]
    train: dict[str, dict[str, Any]]
    eps: tuple[float, ...]
    eps_255: tuple[float, ...]
    black_box: bool = True
    hp_grid: tuple[tuple[float, float], ...] = ()
    grad_norms: bool = False
    eval_batch: int = 500
    vary: str | None = None
    notes: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON data of ``spec.json`` (lists for tuples)."""
        return {
            "experiment": self.experiment, "scale": self.scale, "seeds": list(self.seeds),
            "tasks": [t.to_json() for t in self.tasks], "strategies": list(self.strategies),
            "train": self.train, "eps": list(self.eps), "eps_255": list(self.eps_255),
            "black_box": self.black_box, "hp_grid": [list(p) for p in self.hp_grid],
            "grad_norms": self.grad_norms, "eval_batch": self.eval_batch, "vary": self.vary,
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Paper1Plan:
        return cls(
            experiment=d["experiment"], scale=d["scale"], seeds=tuple(d["seeds"]),
            tasks=tuple(Task.from_json(t) for t in d["tasks"]), strategies=tuple(d["strategies"]),
            train=d["train"], eps=tuple(d["eps"]), eps_255=tuple(d["eps_255"]),
            black_box=d["black_box"], hp_grid=tuple(tuple(p) for p in d["hp_grid"]),
            grad_norms=d["grad_norms"], eval_batch=d["eval_batch"], vary=d.get("vary"),
            notes=d.get("notes", ""))

    @property
    def seed_list(self) -> list[int]:
        return list(self.seeds)

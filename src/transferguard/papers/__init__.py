"""The two papers, one package each: ``plan`` (the typed plan), ``specs`` (the experiments'
plans), ``run`` (rows from a plan), ``report``.

Each paper package's ``__init__`` declares its experiments as plain data (:class:`Paper`,
:class:`Declared`); :mod:`transferguard.experiments.registry` turns them into registered
experiments whose functions are imported on first call. Importing this package, or a paper
package, imports neither torch nor pandas.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

#: The paper packages, in the order ``transferguard reproduce --list`` shows their experiments.
PAPERS = ("paper1", "paper2")


@dataclass(frozen=True)
class Declared:
    """One experiment as its paper declares it.

    ``plan`` names a function of the paper's ``specs`` module, called as
    ``plan(scale, seeds, *extra)``; ``report`` (``"module:function"`` inside the paper package)
    replaces the paper's report for this experiment only.
    """

    name: str
    summary: str
    plan: str
    extra: tuple[Any, ...] = ()
    report: str | None = None


@dataclass(frozen=True)
class Paper:
    """A paper package: its name, its run and report functions and its experiments.

    ``run`` and ``report`` are ``"module:function"`` inside the package (``"run:run_families"``);
    ``plan_type`` names the reader of its plans' JSON (``"plan:Paper2Plan.from_json"``).
    """

    name: str
    package: str
    run: str
    report: str
    plan_type: str
    experiments: tuple[Declared, ...]

    def target(self, ref: str) -> str:
        """``"module:function"`` inside the package as a full ``"package.module:function"``."""
        return f"{self.package}.{ref}"

    def plan_target(self, exp: Declared) -> str:
        return self.target(f"specs:{exp.plan}")

    def report_target(self, exp: Declared) -> str:
        return self.target(exp.report or self.report)


def declared() -> list[Paper]:
    """Every paper package's :class:`Paper`, in :data:`PAPERS` order (imports only their ``__init__``)."""
    return [importlib.import_module(f"{__name__}.{name}").PAPER for name in PAPERS]

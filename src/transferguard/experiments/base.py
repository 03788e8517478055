"""What an experiment is: a named grid that produces tidy result rows and a report.

Kept free of heavy imports (torch, pandas, matplotlib) so that listing the registry is instant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..results import RESULT_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from ..reports.common import Report

__all__ = ["RESULT_COLUMNS", "SCALES", "Experiment"]

#: ``offline``: the data available here at CPU-sized budgets. ``offline-gpu``: the same data and
#: budgets, with paper 2's EfficientNet-Lite0 family (where the attack works at 8/255) in every
#: paper-2 experiment, ablations included, so that each claim has a family it can be checked on;
#: sized for one GPU. ``paper``: the papers' datasets and budgets.
SCALES = ("offline", "offline-gpu", "paper")


@dataclass
class Experiment:
    """A registered experiment.

    ``plan(scale, seeds)`` returns the typed plan of the whole grid (a frozen dataclass of its
    paper, e.g. :class:`~transferguard.papers.paper1.plan.Paper1Plan`, whose ``to_json()`` is
    the run folder's ``spec.json`` and ``from_json`` reads it back);
    ``run(runner, plan)`` computes it and returns result rows; ``report(df, out_dir, plan)``
    writes figures from the results table alone and returns a
    :class:`~transferguard.reports.common.Report` (Markdown text and the checked findings).
    The three may be :class:`~transferguard.experiments.registry.Lazy` references, which import
    their module on first call.
    """

    name: str
    summary: str
    paper: str
    plan: Callable[[str, int], Any]
    run: Callable[[Any, Any], list[dict[str, Any]]]
    report: Callable[[pd.DataFrame, Any, Any], Report]
    #: Claims are tested over seeds: at least 3 offline, 5 at paper scale.
    default_seeds: dict[str, int] = field(
        default_factory=lambda: {"offline": 3, "offline-gpu": 3, "paper": 5})

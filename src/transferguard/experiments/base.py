"""What an experiment is: a named grid that produces tidy result rows and a report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: Columns every results table has, in this order (more may follow).
RESULT_COLUMNS = ["experiment", "task", "method", "arch", "seed", "attack", "eps", "metric", "value"]

SCALES = ("offline", "paper")


@dataclass
class Experiment:
    """A registered experiment.

    ``plan(scale, seeds)`` returns the resolved, JSON-serialisable spec of the whole grid;
    ``run(runner, plan)`` computes it and returns result rows; ``report(df, out_dir, plan)``
    writes Markdown/figures from the results table alone and returns the Markdown text.
    """

    name: str
    summary: str
    paper: str
    plan: Callable[[str, int], dict[str, Any]]
    run: Callable[[Any, dict[str, Any]], list[dict[str, Any]]]
    report: Callable[[pd.DataFrame, Any, dict[str, Any]], str]
    default_seeds: dict[str, int] = field(default_factory=lambda: {"offline": 1, "paper": 3})

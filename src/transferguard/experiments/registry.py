"""The registry of named experiments (``transferguard reproduce --list``).

Each paper package (:mod:`transferguard.papers`) declares its experiments as plain data (names,
summaries, plan functions); here each becomes an :class:`Experiment` whose plan, run and report
functions are :class:`Lazy` references, so listing the registry imports neither torch nor
pandas. A reference imports its module the first time it is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .._names import unknown_name
from ..errors import ConfigError
from ..papers import declared
from .base import Experiment


class Lazy:
    """The function ``"package.module:function"`` (or ``"package.module:Class.method"``),
    imported on its first call.

    Extra positional arguments are appended to every call's: ``Lazy("m:f", "fig4")(s, n)`` is
    ``m.f(s, n, "fig4")``.
    """

    def __init__(self, target: str, *extra: Any) -> None:
        module, sep, attr = target.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"expected 'package.module:function', got {target!r}")
        self.target = target
        self.extra = extra
        self._fn: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """Import the module (once) and return the function."""
        if self._fn is None:
            module, _, attr = self.target.partition(":")
            fn = importlib.import_module(module)
            for name in attr.split("."):  # "Class.method" names a class's method
                fn = getattr(fn, name)
            self._fn = fn
        return self._fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, *self.extra, **kwargs)

    def __repr__(self) -> str:
        extra = "".join(f", {e!r}" for e in self.extra)
        return f"Lazy({self.target!r}{extra})"


EXPERIMENTS: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    """Add ``exp`` to :data:`EXPERIMENTS` (replacing one of the same name) and return it."""
    EXPERIMENTS[exp.name] = exp
    return exp


def get_experiment(name: str) -> Experiment:
    """The registered experiment ``name``; a :class:`ConfigError` naming the known ones if absent."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(unknown_name("experiment", name, EXPERIMENTS)) from None


#: Per paper, the function that reads its plan back from JSON (``spec.json``): ``from_json``.
PLAN_READERS: dict[str, Lazy] = {}


def read_plan(paper: str, data: dict[str, Any]) -> Any:
    """The typed plan of ``paper`` (``"paper1"``, ...) from its JSON data."""
    return PLAN_READERS[paper](data)


for _paper in declared():  # each paper package declares its experiments (transferguard.papers)
    PLAN_READERS[_paper.name] = Lazy(_paper.target(_paper.plan_type))
    for _exp in _paper.experiments:
        register(Experiment(_exp.name, _exp.summary, _paper.name,
                            Lazy(_paper.plan_target(_exp), *_exp.extra),
                            Lazy(_paper.target(_paper.run)), Lazy(_paper.report_target(_exp))))

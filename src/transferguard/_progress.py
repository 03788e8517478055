"""Progress for long work: a tqdm bar on a terminal, plain periodic log lines elsewhere.

With stderr redirected (a batch job, CI, ``nohup``) a tqdm bar writes thousands of ``\\r``
updates and cursor escapes into the log. :func:`progress_bar` gives the bar only when stderr is a
terminal; otherwise it logs one line per 10 % of the work or per 30 s, whichever comes first.
``--quiet`` switches both off (:func:`set_enabled`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

log = logging.getLogger("transferguard.progress")

_state = {"enabled": True}
#: A plain progress line at least every this many seconds, and at every this share of the work.
LINE_SECONDS, LINE_FRACTION = 30.0, 0.10


def set_enabled(enabled: bool) -> None:
    """Turn every progress bar and progress line on or off (the CLI's ``--quiet``)."""
    _state["enabled"] = bool(enabled)


def progress_bar(iterable: Iterable[Any] | None = None, *, total: float | None = None,
             desc: str = "", unit: str = "it", disable: bool = False, initial: float = 0,
             leave: bool = False) -> Any:
    """A tqdm bar (terminal) or a :class:`PlainProgress` (anything else) over ``iterable``."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if disable or not _state["enabled"]:
        return tqdm(iterable, total=total, disable=True)
    if _is_terminal():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave,
                    dynamic_ncols=True)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, initial=initial)


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class PlainProgress:
    """The subset of tqdm's interface the library uses, reported as occasional log lines."""

    def __init__(self, iterable: Iterable[Any] | None, *, total: float | None, desc: str,
                 unit: str, initial: float = 0) -> None:
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc or "progress", unit
        self.n = initial
        self.postfix = ""
        self._t0 = self._last_t = time.monotonic()
        self._last_n = initial
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        step = (self.total or 0) * LINE_FRACTION
        if (step and self.n - self._last_n >= step) or now - self._last_t >= LINE_SECONDS:
            self._line(now)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n != self._last_n:
                self._line(time.monotonic())

    def _line(self, now: float) -> None:
        self._last_n, self._last_t = self.n, now
        done = f"{self.n:g}/{self.total:g} {self.unit}" if self.total else f"{self.n:g} {self.unit}"
        share = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        log.info("%s: %s%s, %.0f s%s", self.desc, done, share, now - self._t0, extra)

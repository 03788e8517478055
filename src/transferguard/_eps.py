"""L∞ budgets as people write them: ``"8/255"``, ``0.03``; one set of rules for CLI and library.

Torch-free, so the command line checks ε before importing any heavy module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from .errors import ConfigError


def _in_range(v: float, shown: object) -> float:
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ConfigError(f"ε {shown} is outside [0, 1]: ε is in pixel units (images are in [0, 1])")
    return v


def parse_eps(text: str) -> list[float]:
    """'1/255,8/255,0.1' → [0.0039…, 0.0313…, 0.1]; each ε must lie in [0, 1] (pixel units)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = float(Fraction(part))
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"cannot read ε {part!r}: write it in pixel units, e.g. 8/255 or 0.03") from None
        out.append(_in_range(v, part))
    if not out:
        raise ConfigError("no ε given")
    return out


def eps_list(eps: Sequence[float] | str) -> list[float]:
    """Sorted distinct budgets from a string (:func:`parse_eps`) or a sequence of numbers."""
    if isinstance(eps, str):
        return sorted(set(parse_eps(eps)))
    out = []
    for e in eps:
        try:
            v = float(e)
        except (TypeError, ValueError):
            raise ConfigError(f"cannot read ε {e!r}: give numbers in pixel units") from None
        out.append(_in_range(v, e))
    if not out:
        raise ConfigError("no ε given")
    return sorted(set(out))

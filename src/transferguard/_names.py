"""Unknown-name messages shared by every registry: what was asked, the closest known names, all."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_name(kind: str, name: str, known: Iterable[str]) -> str:
    """``unknown method 'fT'; did you mean 'ft'? known: scratch, ft, …`` (no suggestion if none is close)."""
    names = list(known)
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
    if not close:  # case slips ("FT", "MNIST5K") are the most common typo
        close = [n for n in names if n.lower() == str(name).lower()]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}{hint} known: {', '.join(names)}"

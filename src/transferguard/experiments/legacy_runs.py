"""One-time migration of run folders written before runs recorded ``run.json``.

Such a run kept its wall time, cache counters and training cost only in the closing paragraph of
``report.md``. :func:`run_record_from_report` reads them back so that ``reproduce --report-only``
can write the folder's ``run.json``; after that the Markdown is never read again. This is the
only code that parses a report; delete it once no such folder is left.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

# The footer as `reproduce` wrote it before run.json existed.
_FOOTER = re.compile(
    r"Produced by `(?P<command>transferguard reproduce (?P<name>\S+) --scale (?P<scale>\S+) "
    r"--seeds (?P<seeds>\d+))` in (?P<elapsed>\d+) s \(models trained (?P<trained>\d+), loaded "
    r"from cache (?P<loaded>\d+); evaluation units computed (?P<evaluated>\d+), cached "
    r"(?P<eval_cached>\d+)\)\. Training the (?P<models>\d+) models it uses took (?P<train>\d+) s")


def run_record_from_report(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run record of a legacy run folder, derived from the footer of its ``report.md``.

    Seconds are whole, as the footer printed them; the finish time is unknown (None). Claims are
    left None: the caller recounts them from the findings. None if there is no such footer.
    """
    path = Path(out_dir) / "report.md"
    m = _FOOTER.search(path.read_text(encoding="utf-8")) if path.exists() else None
    if m is None:
        return None
    return {"experiment": m["name"], "scale": m["scale"], "seeds": int(m["seeds"]),
            "command": m["command"], "finished": None, "elapsed_s": int(m["elapsed"]),
            "counters": {k: int(m[k]) for k in ("trained", "loaded", "evaluated", "eval_cached")},
            "models": int(m["models"]), "train_seconds": int(m["train"]), "claims": None,
            "migrated_from": "report.md footer"}

"""One-time migrations of run folders written by older versions.

* :func:`run_record_from_report` — folders from before runs recorded ``run.json``;
* :func:`add_image_counts` — results from before rows carried ``n_images`` / ``n_classes``;
* :func:`add_upstream` — results from before rows carried ``upstream_unfinished``.

A run of the first kind kept its wall time, cache counters and training cost only in the closing
paragraph of ``report.md``; :func:`run_record_from_report` reads them back so that
``reproduce --report-only`` can write the folder's ``run.json``; after that the Markdown is never
read again (the only code that parses a report). All run once per folder, from
:func:`~transferguard.experiments.reproduce.rebuild_report`, which records the migration in
``run.json``; delete them once no such folder is left.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

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


def add_image_counts(df: pd.DataFrame, plan: Any, data_root: str | None = None
                     ) -> pd.DataFrame | None:
    """The results of a run written before rows carried ``n_images`` / ``n_classes``, with both
    columns added from the plan's test splits (loaded again: the split is a pure function of the
    ``DataSpec``), so that the tested claims can count images. None when nothing was missing.

    Paper 1 rows are keyed by task (Domain B's test split), paper 2 rows by family and target
    domain (at most the family's ``n_test`` images). Every other column is left as it was.
    """
    if "n_images" in df.columns and df["n_images"].notna().all():
        return None
    import pandas as pd

    from ..data import load_domain
    from ..papers.paper1.plan import Paper1Plan
    from .spec import DataSpec

    def size(data: dict[str, Any], cap: int | None = None) -> tuple[int, int]:
        spec = DataSpec(**data)
        dom = load_domain(spec.domain, root=data_root, **spec.load_kwargs())
        return min(len(dom.test.y), cap or len(dom.test.y)), dom.num_classes

    out = df.copy()
    if isinstance(plan, Paper1Plan):
        sizes = {t.task: size(t.B) for t in plan.tasks}
        keys = out["task"]
    else:
        sizes = {(f.family, t["domain"]): size(t, f.n_test)
                 for f in plan.families for t in f.targets}
        keys = pd.Series(list(zip(out["family"], out["task"], strict=True)), index=out.index)
    out["n_images"] = [sizes[k][0] for k in keys]
    out["n_classes"] = [sizes[k][1] for k in keys]
    return out


def add_upstream(df: pd.DataFrame, out_dir: str | os.PathLike) -> pd.DataFrame | None:
    """The results of a run written before rows carried ``upstream_unfinished``, with it derived
    from the sidecars in the folder's ``checkpoints/`` (every model behind the run, ancestors
    included), as :meth:`~transferguard.experiments.runner.Runner.upstream_unfinished` computes
    it: the target's ancestors, and for a black-box FGSM row (``fgsm-transfer``) the crafting
    model's lineage too. ``plateaued`` is re-read with
    :func:`~transferguard.training.convergence.converged` (a perfect validation score is a
    plateau). None when the column is there or the rows name no target model.
    """
    if "upstream_unfinished" in df.columns or "target" not in df.columns:
        return None
    from ..errors import CheckpointError
    from ..models import read_sidecar
    from ..results import Threat, attack_name
    from ..training.convergence import converged, unfinished

    metas = {}
    for path in sorted((Path(out_dir) / "checkpoints").glob("*.json")):
        with suppress(CheckpointError):  # index.json and unreadable sidecars: no lineage
            meta = read_sidecar(path)
            metas[meta["key"]] = meta
    black_box = attack_name("fgsm", Threat.TRANSFER)

    def lineage(key: str) -> list[str]:
        out, key = [], metas.get(key, {}).get("parent")
        while key and key not in out:
            out.append(key)
            key = metas.get(key, {}).get("parent")
        return out

    missing = {k for k in df["target"].dropna().unique() if k not in metas}
    if missing:
        log.warning(
            "%s: %d target models have no sidecar in checkpoints/: their lineage is unknown",
            out_dir, len(missing))
    out = df.copy()
    upstream = []
    for r in out.itertuples():
        keys = lineage(r.target)
        if r.attack == black_box and isinstance(getattr(r, "source", None), str):
            keys += [r.source, *lineage(r.source)]
        upstream.append(unfinished(metas[k] for k in dict.fromkeys(keys)
                                   if k in metas and k != r.target))
    out["upstream_unfinished"] = upstream
    if "plateaued" in out.columns:
        out["plateaued"] = [converged(metas[k]) if k in metas else p
                            for k, p in zip(out["target"], out["plateaued"], strict=True)]
    return out

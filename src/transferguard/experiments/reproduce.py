"""``reproduce``: run a registered experiment into a run folder.

The run folder holds ``spec.json`` (the resolved plan), ``results.csv`` (tidy rows),
``report.md`` / ``report.html`` with PNG figures, ``run.log``, and ``checkpoints/`` links to the
cached models the run used. Results and reports are written atomically; models and evaluation
units are cached in the store, so re-running recomputes nothing.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from .._io import atomic_write, atomic_write_json
from ..errors import ConfigError
from ..models.checkpoint import read_sidecar
from ..reports.common import slug, write_report
from .base import RESULT_COLUMNS, SCALES
from .registry import get_experiment
from .runner import Runner
from .store import Store

log = logging.getLogger(__name__)


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows → DataFrame with the standard columns first."""
    df = pd.DataFrame(rows)
    for c in RESULT_COLUMNS:
        if c not in df.columns:
            df[c] = None
    return df[RESULT_COLUMNS + [c for c in df.columns if c not in RESULT_COLUMNS]]


def write_results(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def run_folder(name: str, scale: str, out: str | os.PathLike | None = None) -> Path:
    """``out``, or the default run folder ``runs/NAME-SCALE``."""
    return Path(out) if out is not None else Path("runs") / f"{name}-{scale}"


def reproduce(name: str, *, scale: str = "offline", seeds: int | None = None,
              out: str | os.PathLike | None = None, store: str | os.PathLike | None = None,
              device: str = "auto", progress: bool = True, data_root: str | None = None,
              backend: str = "local", workers: int | None = None, address: str | None = None
              ) -> tuple[pd.DataFrame, Path]:
    """Run experiment ``name`` and write its run folder; return (results, run folder)."""
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; expected one of {SCALES}")
    exp = get_experiment(name)
    n_seeds = seeds if seeds is not None else exp.default_seeds[scale]
    if n_seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    out_dir = run_folder(name, scale, out)
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("transferguard")
    root.addHandler(handler)
    prev_level = root.level
    root.setLevel(logging.INFO)
    try:
        plan = exp.plan(scale, n_seeds)
        atomic_write_json(out_dir / "spec.json", plan)
        runner = Runner(Store(store), device=device, progress=progress, data_root=data_root,
                        backend=backend, workers=workers, address=address)
        t0 = time.perf_counter()
        rows = exp.run(runner, plan)
        df = results_frame(rows)
        write_results(df, out_dir / "results.csv")
        behind = models_behind(runner)
        _link_checkpoints(runner.store, behind, out_dir)
        md = exp.report(df, out_dir, plan)
        n_models, train_s = training_cost(behind)
        elapsed = time.perf_counter() - t0  # computing, checkpoint links and report figures
        md += (f"\n---\nProduced by `transferguard reproduce {name} --scale {scale} --seeds {n_seeds}` "
               f"in {elapsed:.0f} s (models trained {runner.counters['trained']}, loaded from cache "
               f"{runner.counters['loaded']}; evaluation units computed {runner.counters['evaluated']}, "
               f"cached {runner.counters['eval_cached']}). Training the {n_models} models it uses "
               f"took {train_s:.0f} s when they were trained (the bulk of what a run with an empty "
               f"store spends).\n")
        write_report(out_dir, md, f"transferguard {name}")
        log.info("%s finished in %.1f s: %s", name, elapsed, runner.counters)
        return df, out_dir
    finally:
        root.removeHandler(handler)
        root.setLevel(prev_level)
        handler.close()


def _without_notes(obj: Any) -> Any:
    """A plan as JSON data with every ``notes`` entry removed (notes never change a number)."""
    if isinstance(obj, dict):
        return {k: _without_notes(v) for k, v in obj.items() if k != "notes"}
    if isinstance(obj, list | tuple):
        return [_without_notes(v) for v in obj]
    return obj


def _n_seeds(plan: dict[str, Any]) -> int:
    seeds = plan.get("seeds", (plan.get("families") or [{}])[0].get("seeds"))
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError("spec.json names no seeds")
    return len(seeds)


def rebuild_report(name: str, out: str | os.PathLike) -> tuple[pd.DataFrame, Path]:
    """Rewrite the report of an existing run folder from its ``results.csv``, computing nothing.

    For when the report code (findings, figures, notes) improved after a long run. The current
    plan must equal the run's ``spec.json`` apart from its notes, otherwise the numbers would
    describe another experiment and a real re-run is needed.
    """
    exp = get_experiment(name)
    out_dir = Path(out)
    try:
        stored = json.loads((out_dir / "spec.json").read_text(encoding="utf-8"))
        df = pd.read_csv(out_dir / "results.csv")
    except FileNotFoundError:
        raise ConfigError(f"{out_dir} holds no finished run of {name} (spec.json and results.csv); "
                          f"run `transferguard reproduce {name}` first") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(f"{out_dir}: unreadable spec.json or results.csv: {exc}") from None
    plan = json.loads(json.dumps(exp.plan(stored.get("scale", "offline"), _n_seeds(stored)),
                                 default=str))
    if _without_notes(plan) != _without_notes(stored):
        raise ConfigError(f"the {name} plan changed since the run in {out_dir}; its results no "
                          "longer match the code: re-run without --report-only")
    old = (out_dir / "report.md").read_text(encoding="utf-8") if (out_dir / "report.md").exists() else ""
    footer = old[old.index("\n---\nProduced by") + 5:].strip() if "\n---\nProduced by" in old else ""
    footer = footer.split("\nReport rebuilt from")[0].strip()
    atomic_write_json(out_dir / "spec.json", plan)
    md = exp.report(df, out_dir, plan)
    md += (f"\n---\n{footer}\nReport rebuilt from `results.csv` by `transferguard reproduce {name} "
           f"--report-only` (nothing recomputed).\n")
    write_report(out_dir, md, f"transferguard {name}")
    return df, out_dir


def reproduce_all(*, scale: str = "offline", seeds: int | None = None,
                  out: str | os.PathLike | None = None, names: list[str] | None = None,
                  report_only: bool = False, **kwargs: Any) -> tuple[pd.DataFrame, Path]:
    """Run every registered experiment (sharing one store) and write an index report.

    Each experiment gets its own run folder under ``out``; ``out/results.csv`` concatenates their
    tables and ``out/report.md`` / ``report.html`` summarise which findings held, with links.
    With ``report_only`` every report and the index are rebuilt from the folders' results
    (:func:`rebuild_report`), keeping the wall times the original runs recorded.
    """
    from .registry import EXPERIMENTS

    out_dir = run_folder("all", scale, out)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames, lines = [], []
    total = 0.0
    if report_only and names is None:  # every experiment that has a finished run folder here
        names = [n for n in EXPERIMENTS if (out_dir / n / "results.csv").exists()]
        if not names:
            raise ConfigError(f"{out_dir} holds no finished experiment to rebuild")
    for name in names or list(EXPERIMENTS):
        t0 = time.perf_counter()
        if report_only:
            df, run_dir = rebuild_report(name, out_dir / name)
        else:
            df, run_dir = reproduce(name, scale=scale, seeds=seeds, out=out_dir / name, **kwargs)
        secs = time.perf_counter() - t0
        md = (run_dir / "report.md").read_text(encoding="utf-8")
        m = re.search(r"` in (\d+) s \(", md)  # the wall time recorded by the computing run
        if m or report_only:
            secs = float(m.group(1)) if m else math.nan
        total += secs
        frames.append(df)
        m = re.search(r"(\d+) of (\d+) claims held on this run, (\d+) did not"
                      r"(?:, (\d+) could not be checked)?", md)
        held = f"{m.group(1)} / {m.group(2)}" if m else "–"
        if m and m.group(4):
            held += f" ({m.group(4)} not checkable)"
        m = re.search(r"Training the (\d+) models it uses took (\d+) s", md)
        alone = f"{m.group(2)} ({m.group(1)} models)" if m else "–"
        lines.append(f"| [{name}]({name}/report.md) | {EXPERIMENTS[name].summary} | {held} | "
                     f"{secs:.0f} | {alone} |")
        all_df = pd.concat(frames, ignore_index=True)
        write_results(all_df, out_dir / "results.csv")
        md_all = "\n".join([
            f"# transferguard: every experiment ({scale} scale)", "",
            "Claims held = how many of the paper's claims that the experiment checks held on this run "
            "(each report lists them with the evidence). Seconds = wall time within this run, where "
            "models and crafted batches already made by an earlier experiment are reused; "
            "training s alone = the recorded training time of every model the experiment uses "
            "(ancestors included), i.e. what it costs on its own with an empty store, "
            "evaluation aside.", "",
            "| experiment | what it measures | claims held | seconds | training s alone |",
            "|---|---|---|---|---|", *lines, "",
            f"Total wall time: {total / 60:.1f} min. Produced by `transferguard reproduce all --scale {scale}`"
            + (f" --seeds {seeds}" if seeds else "") + "."
            + (" Index rebuilt with `--report-only` from the runs' recorded times." if report_only else "")])
        write_report(out_dir, md_all, f"transferguard all ({scale})")
    return pd.concat(frames, ignore_index=True), out_dir


def models_behind(runner: Runner) -> dict[str, dict[str, Any]]:
    """Sidecar metadata of every stored model the run asked for, ancestors included.

    Walks the ``parent`` keys of the checkpoints, so models that this run found in the cache (and
    never loaded) count too; public pre-trained models are not in the store and are skipped.
    """
    todo, out = [*runner.used, *runner._models], {}
    while todo:
        key = todo.pop()
        if key in out or not runner.store.has_model(key):
            continue
        out[key] = read_sidecar(runner.store.model_path(key))
        if out[key].get("parent"):
            todo.append(out[key]["parent"])
    return out


def training_cost(metas: dict[str, dict[str, Any]]) -> tuple[int, float]:
    """(number of models, their recorded training seconds) of :func:`models_behind`'s result:
    what the experiment costs on its own with an empty store, evaluation aside."""
    return len(metas), sum(float(m.get("train_seconds") or 0.0) for m in metas.values())


def _link_checkpoints(store: Store, metas: dict[str, dict[str, Any]], out_dir: Path) -> None:
    """Put the checkpoints this run used into ``out_dir/checkpoints`` (hard links, else copies)."""
    ck = out_dir / "checkpoints"
    ck.mkdir(exist_ok=True)
    index = {}
    for key, meta in metas.items():
        stem = store.model_path(key)
        name = f"{slug(meta.get('label') or key)}-{key}"
        for suffix in (".safetensors", ".json"):
            src, dst = stem.with_suffix(suffix), ck / f"{name}{suffix}"
            if dst.exists():
                dst.unlink()
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        index[name] = {"key": key, "label": meta.get("label"), "method": meta.get("method")}
    atomic_write_json(ck / "index.json", index)

"""``reproduce``: run a registered experiment into a run folder.

The run folder holds ``spec.json`` (the resolved plan), ``results.csv`` (tidy rows), ``run.json``
(the run's record: command, finish time, wall time, cache counters, training cost, claim counts),
``report.md`` / ``report.html`` with PNG figures, ``run.log``, and ``checkpoints/`` links to the
cached models the run used. Results and reports are written atomically; models and evaluation
units are cached in the store, so re-running recomputes nothing.

pandas, torch and matplotlib are imported inside the functions that use them: the
``transferguard.experiments`` package imports this module and must stay light for
``transferguard reproduce --list``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import atomic_write, atomic_write_json
from ..errors import ConfigError, StalePlanError
from ..results import normalise_attack_names, results_frame, write_results
from .base import SCALES, Experiment
from .legacy_runs import add_image_counts, add_upstream, run_record_from_report
from .registry import get_experiment, read_plan

if TYPE_CHECKING:
    import pandas as pd

    from .runner import Runner
    from .store import Store

log = logging.getLogger(__name__)

#: The run record of a run folder, written by :func:`reproduce`, updated by :func:`rebuild_report`.
RUN_RECORD = "run.json"


def run_folder(name: str, scale: str, out: str | os.PathLike | None = None) -> Path:
    """``out``, or the default run folder ``runs/NAME-SCALE``."""
    return Path(out) if out is not None else Path("runs") / f"{name}-{scale}"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def command_line(name: str, scale: str, seeds: int, first_seed: int = 0,
                 precision: str = "fp32") -> str:
    """The command that reproduces a run, as its report quotes it (``--precision`` when not fp32,
    as a bf16 run's models differ from the fp32 ones a plain command trains on the CPU)."""
    return (f"transferguard reproduce {name} --scale {scale} --seeds {seeds}"
            + (f" --first-seed {first_seed}" if first_seed else "")
            + (f" --precision {precision}" if precision != "fp32" else ""))


def shift_seeds(plan: Any, first_seed: int) -> Any:
    """The (typed) plan with every ``seeds`` list ``[0, …, n−1]`` replaced by ``[K, …, K+n−1]``.

    Plans are built for seeds 0…n−1; an independent run with disjoint seeds is the same plan
    shifted (``--first-seed K``). With ``first_seed`` 0 the plan is returned unchanged.
    """
    if not first_seed:
        return plan
    return type(plan).from_json(_shifted_json(plan.to_json(), first_seed))


def _shifted_json(data: Any, first_seed: int) -> Any:
    if isinstance(data, dict):
        return {k: ([int(s) + first_seed for s in v] if k == "seeds" and isinstance(v, list)
                    else _shifted_json(v, first_seed)) for k, v in data.items()}
    if isinstance(data, list):
        return [_shifted_json(v, first_seed) for v in data]
    return data


def device_label(dev: Any) -> str:
    """What a run record says of an accelerator: ``cuda (NVIDIA H200)`` (a CPU run says nothing)."""
    import torch

    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return str(dev)


def footer_markdown(run: dict[str, Any]) -> str:
    """The closing paragraph of a report, written from its run record (``run.json``) alone."""
    if run.get("elapsed_s") is None:  # a legacy folder whose report held no footer to migrate
        text = (f"Produced by `{run['command']}` (its wall time, cache use and training cost were "
                "not recorded).")
    else:
        c = run["counters"]
        on = f" on {run['device']}" if run.get("device") else ""
        text = (f"Produced by `{run['command']}`{on} in {run['elapsed_s']:.0f} s (models trained "
                f"{c['trained']}, loaded from cache {c['loaded']}; evaluation units computed "
                f"{c['evaluated']}, cached {c['eval_cached']}). Training the {run['models']} models "
                f"it uses took {run['train_seconds']:.0f} s when they were trained (the bulk of what "
                "a run with an empty store spends).")
    if run.get("report_rebuilt"):
        text += (f"\nReport rebuilt from `results.csv` by `transferguard reproduce {run['experiment']} "
                 "--report-only` (nothing recomputed).")
    return f"\n---\n{text}\n"


def _refuse_other_run(out_dir: Path, name: str, plan: Any) -> None:
    """ConfigError when ``out_dir`` holds finished results of a plan other than ``plan``."""
    spec, results = out_dir / "spec.json", out_dir / "results.csv"
    if not results.exists():
        return
    try:
        stored = json.loads(spec.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = None
    if stored is None or _without_notes(stored) != _without_notes(
            _as_json(plan)):
        raise ConfigError(f"{out_dir} already holds the results of another run (not the {name} "
                          "plan asked for now); pass --overwrite to replace them, or choose "
                          "another --out")


def read_run_record(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The ``run.json`` of a run folder, or None if it has none."""
    path = Path(out_dir) / RUN_RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ConfigError(f"{path}: unreadable run record: {exc}") from None


def checked_request(name: str, scale: str, seeds: int | None, first_seed: int
                    ) -> tuple[Experiment, int]:
    """The experiment and its seed count, every argument checked (one-line errors)."""
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; expected one of {SCALES}")
    exp = get_experiment(name)
    n_seeds = seeds if seeds is not None else exp.default_seeds[scale]
    if n_seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    if first_seed < 0:
        raise ConfigError("--first-seed must be at least 0")
    return exp, n_seeds


def resolved_plan(exp: Experiment, scale: str, n_seeds: int, first_seed: int,
                  precision: str) -> Any:
    """The plan a run executes: seeds shifted to start at ``first_seed`` and every TrainSpec at
    ``precision`` (fp32: the plan as before precision existed)."""
    from .spec import plan_with_precision

    return plan_with_precision(shift_seeds(exp.plan(scale, n_seeds), first_seed), precision)


def reproduce(name: str, *, scale: str = "offline", seeds: int | None = None,
              out: str | os.PathLike | None = None, store: str | os.PathLike | None = None,
              device: str = "auto", progress: bool = True, data_root: str | None = None,
              backend: str = "local", workers: int | None = None, address: str | None = None,
              overwrite: bool = False, first_seed: int = 0, precision: str = "auto",
              gpus_per_unit: float | None = None) -> tuple[pd.DataFrame, Path]:
    """Run experiment ``name`` and write its run folder; return (results, run folder).

    ``seeds`` seeds starting at ``first_seed`` (default 0): two runs with disjoint seeds are two
    independent replications (compare them with :func:`transferguard.experiments.compare.compare`).

    Re-running the same plan into its folder is allowed (finished work comes from the store, so
    the table is the same); a folder that holds a run of another plan (other seeds, scale or
    experiment) is refused unless ``overwrite``.

    ``precision`` (auto, fp32, bf16; auto = :func:`transferguard.training.default_precision` of
    the device: bf16 on CUDA, fp32 on the CPU) is written into every TrainSpec of the plan
    (:func:`~transferguard.experiments.spec.plan_with_precision`), so a bf16 run's models, batches
    and evaluations have their own keys and its ``spec.json`` says so. ``gpus_per_unit``: GPUs
    each Ray training unit requests (:func:`~transferguard.experiments.backends.run_units`).
    """
    from ..reports.common import write_report
    from ..training.config import resolve_precision
    from ..utils import resolve_device
    from .runner import Runner
    from .store import Store

    exp, n_seeds = checked_request(name, scale, seeds, first_seed)
    out_dir = run_folder(name, scale, out)
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("transferguard")
    root.addHandler(handler)
    prev_level = root.level
    root.setLevel(logging.INFO)
    try:
        dev = resolve_device(device)
        precision = resolve_precision(precision, dev, scale)
        plan = resolved_plan(exp, scale, n_seeds, first_seed, precision)
        if not overwrite:
            _refuse_other_run(out_dir, name, plan)
        atomic_write_json(out_dir / "spec.json", plan.to_json())
        runner = Runner(Store(store), device=device, progress=progress, data_root=data_root,
                        backend=backend, workers=workers, address=address,
                        gpus_per_unit=gpus_per_unit)
        t0 = time.perf_counter()
        rows = exp.run(runner, plan)
        df = results_frame(rows)
        write_results(df, out_dir / "results.csv")
        behind = models_behind(runner)
        _link_checkpoints(runner.store, behind, out_dir)
        report = exp.report(df, out_dir, plan)
        write_findings(name, report.findings, out_dir)
        n_models, train_s = training_cost(behind)
        elapsed = time.perf_counter() - t0  # computing, checkpoint links and report figures
        run = {"experiment": name, "scale": scale, "seeds": n_seeds,
               **({"first_seed": first_seed} if first_seed else {}),
               "command": command_line(name, scale, n_seeds, first_seed, precision),
               **({"precision": precision} if precision != "fp32" else {}),
               **({"device": device_label(dev)} if dev.type != "cpu" else {}), "finished": _utc_now(),
               "elapsed_s": round(elapsed, 3), "counters": dict(runner.counters),
               "models": n_models, "train_seconds": round(train_s, 3), "claims": report.claims()}
        atomic_write_json(out_dir / RUN_RECORD, run)  # first: a report.md implies its run.json
        write_report(out_dir, report.markdown + footer_markdown(run), f"transferguard {name}")
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


def _as_json(plan: Any) -> Any:
    """A typed plan as the JSON data ``spec.json`` holds (read back: tuples as lists)."""
    return json.loads(json.dumps(plan.to_json(), default=str))


def write_findings(name: str, findings: Any, out_dir: Path) -> Path:
    """``findings.csv`` beside ``results.csv``: one row per claim (verdict, effect, 95 % CI)."""
    from ..reports.common import findings_frame

    frame = findings_frame(name, findings)
    return atomic_write(out_dir / "findings.csv", lambda tmp: frame.to_csv(tmp, index=False))


def rebuild_report(name: str, out: str | os.PathLike) -> tuple[pd.DataFrame, Path]:
    """Rewrite the report of an existing run folder from its ``results.csv``, computing nothing.

    For when the report code (findings, figures, notes) improved after a long run. The current
    plan must equal the run's ``spec.json`` apart from its notes, otherwise the numbers would
    describe another experiment and a real re-run is needed. ``run.json`` keeps what the
    computing run recorded (wall time, counters, training cost); only its claim counts, which
    follow the report code, and the ``report_rebuilt`` time are updated. A table from an older
    version is migrated first and ``results.csv`` rewritten (recorded in ``run.json``): image
    counts added (:func:`~transferguard.experiments.legacy_runs.add_image_counts`), the lineage
    column (:func:`~transferguard.experiments.legacy_runs.add_upstream`), legacy attack
    names renamed (:func:`transferguard.results.normalise_attack_names`: ``fgsm-black`` →
    ``fgsm-transfer``); every number is kept as it was.
    """
    import pandas as pd

    from ..reports.common import write_report
    from .spec import plan_precision

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
    try:
        ran = read_plan(exp.paper, stored)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{out_dir}: spec.json is not a {exp.paper} plan: {exc!r}") from None
    scale, seeds = ran.scale, ran.seed_list
    if not seeds:
        raise ConfigError("spec.json names no seeds")
    n_seeds, first = len(seeds), int(min(seeds))
    precision = plan_precision(ran)  # a bf16 run's plan carries it in its TrainSpecs
    plan = resolved_plan(exp, scale, n_seeds, first, precision)
    if _without_notes(_as_json(plan)) != _without_notes(stored):
        raise StalePlanError(f"the {name} plan changed since the run in {out_dir}; its results no "
                             "longer match the code: re-run without --report-only")
    # a folder from before run.json existed: migrate its record from the old report footer
    run = read_run_record(out_dir) or run_record_from_report(out_dir)
    if run is None:
        log.warning("%s has neither run.json nor a report footer: its wall time and training cost "
                    "are unknown", out_dir)
        run = {"experiment": name, "scale": scale, "seeds": n_seeds,
               "command": command_line(name, scale, n_seeds, first, precision), "finished": None,
               "elapsed_s": None,
               "counters": None, "models": None, "train_seconds": None}
    migrated: dict[str, str] = {}
    counted = add_image_counts(df, plan)  # results from before rows carried n_images
    if counted is not None:
        df = counted
        migrated["image_counts_added"] = _utc_now()
    renamed = normalise_attack_names(df)  # results from before issue 12 (e.g. fgsm-black)
    if renamed is not df:
        df = renamed
        migrated["attack_names_normalised"] = _utc_now()
    lineage = add_upstream(df, out_dir)  # results from before rows carried upstream_unfinished
    if lineage is not None:
        df = lineage
        migrated["upstream_added"] = _utc_now()
    if migrated:
        write_results(df, out_dir / "results.csv")
        run = {**run, **migrated}
    atomic_write_json(out_dir / "spec.json", plan.to_json())
    report = exp.report(df, out_dir, plan)
    write_findings(name, report.findings, out_dir)
    run = {**run, "claims": report.claims(), "report_rebuilt": _utc_now()}
    atomic_write_json(out_dir / RUN_RECORD, run)
    write_report(out_dir, report.markdown + footer_markdown(run), f"transferguard {name}")
    return df, out_dir


def _index_row(name: str, summary: str, run: dict[str, Any], stale: bool = False
               ) -> tuple[str, float]:
    """The index table's row of one experiment and its recorded wall time (NaN if unknown);
    ``stale``: its run is of an earlier plan, kept as it was, which the row says."""
    claims = run.get("claims")
    held = f"{claims['held']} / {claims['total']}" if claims else "–"
    if claims and claims.get("inconclusive"):
        held += f" ({claims['inconclusive']} inconclusive)"
    if claims and claims["unchecked"] - claims.get("inconclusive", 0):
        held += f" ({claims['unchecked'] - claims.get('inconclusive', 0)} not checkable)"
    alone = (f"{run['train_seconds']:.0f} ({run['models']} models)"
             if run.get("train_seconds") is not None else "–")
    secs = float(run["elapsed_s"]) if run.get("elapsed_s") is not None else math.nan
    where = f" on {run['device']}" if run.get("device") else ""  # CPU runs say nothing
    when = str(run["finished"])[:16].replace("T", " ") if run.get("finished") else "–"
    seeds = run.get("seeds", "–")
    if stale:
        summary += (f" — **an earlier plan's run**: the code's plan has changed since (e.g. its "
                    f"budgets); `transferguard reproduce {name} --out {name} --overwrite` run in "
                    "this folder replaces it")
    return (f"| [{name}]({name}/report.md) | {summary} | {held} | {secs:.0f}{where} | {alone} | {when} "
            f"| {seeds} |", secs)


def reproduce_all(*, scale: str = "offline", seeds: int | None = None,
                  out: str | os.PathLike | None = None, names: list[str] | None = None,
                  report_only: bool = False, **kwargs: Any) -> tuple[pd.DataFrame, Path]:
    """Run every registered experiment (sharing one store) and write an index report.

    Each experiment gets its own run folder under ``out``; ``out/results.csv`` concatenates their
    tables and ``out/report.md`` / ``report.html`` summarise which findings held, with links. The
    index reads each folder's ``run.json``. With ``report_only`` every report and the index are
    rebuilt from the folders' results (:func:`rebuild_report`), keeping the wall times the
    original runs recorded; a folder whose plan the code no longer makes (:class:`StalePlanError`)
    keeps its report as it is, and its index row says that it is an earlier plan's run.
    """
    import pandas as pd

    from ..reports.common import write_report
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
        stale = False
        if report_only:
            try:
                df, run_dir = rebuild_report(name, out_dir / name)
            except StalePlanError as err:
                log.warning("%s: kept as it is in the index", err)
                stale, run_dir = True, out_dir / name
                df = pd.read_csv(run_dir / "results.csv")
        else:
            df, run_dir = reproduce(name, scale=scale, seeds=seeds, out=out_dir / name, **kwargs)
        run = read_run_record(run_dir)
        if run is None:  # both functions above write it
            raise ConfigError(f"{run_dir} has no {RUN_RECORD}")
        line, secs = _index_row(name, EXPERIMENTS[name].summary, run, stale)
        total += secs
        frames.append(df)
        lines.append(line)
        all_df = pd.concat(frames, ignore_index=True)
        write_results(all_df, out_dir / "results.csv")
        md_all = "\n".join([
            f"# transferguard: every experiment ({scale} scale)", "",
            "Claims held = how many of the paper's claims that the experiment checks held on this run "
            "(each report lists them with the evidence). Seconds = wall time within this run, where "
            "models and crafted batches already made by an earlier experiment are reused; "
            "training s alone = the recorded training time of every model the experiment uses "
            "(ancestors included), i.e. what it costs on its own with an empty store, "
            "evaluation aside; both on the CPU unless the row names a device. Computed = when "
            "the row's run finished (UTC; – for runs recorded before run.json existed). Seeds = "
            "how many seeds the claims were tested over (each claim is decided by a 95 % "
            "interval over seeds and test images; with one seed the interval covers test-image "
            "sampling only).", "",
            "| experiment | what it measures | claims held | seconds | training s alone | computed "
            "| seeds |",
            "|---|---|---|---|---|---|---|", *lines, "",
            (f"Sum of the seconds column: {total / 60:.1f} min; it is one run's wall time only if "
             "every row was computed by the same `reproduce all`. Index rebuilt with "
             "`--report-only` from the runs' recorded times." if report_only else
             f"Total wall time: {total / 60:.1f} min. Produced by `transferguard reproduce all "
             f"--scale {scale}`" + (f" --seeds {seeds}" if seeds else "")
             + (f" --first-seed {kwargs['first_seed']}" if kwargs.get("first_seed") else "")
             + ".")])
        write_report(out_dir, md_all, f"transferguard all ({scale})")
    return pd.concat(frames, ignore_index=True), out_dir


def models_behind(runner: Runner) -> dict[str, dict[str, Any]]:
    """Sidecar metadata of every stored model the run asked for, ancestors included.

    Walks the ``parent`` keys of the checkpoints, so models that this run found in the cache (and
    never loaded) count too; public pre-trained models are not in the store and are skipped.
    """
    from ..models.checkpoint import read_sidecar

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
    from ..reports.common import slug

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

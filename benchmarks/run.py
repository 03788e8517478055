"""transferguard performance benchmarks: our code against its physical limit and bare loops.

Every benchmark times *our* call and a *reference* in the same process, interleaved (order
alternating A B, B A, … so slow drift hits both sides alike), and reports the **median of the
paired ratios** next to the medians of both sides. These machines are shared and noisy, so a
ratio of two neighbouring measurements is far more stable than any absolute time.

Benchmark groups (``--only NAME``, repeatable; each module's docstring says more):

* ``fgsm_sweep`` — FGSM at k = 6 budgets on a DTN (32×32, batch 256), predictions of the crafting
  model (white-box) and of 3 target models (transfer) at every ε. References: the physical limit
  (one forward+backward on the crafting model + one forward per ε per evaluated model, bare
  PyTorch) and a per-ε loop in the style of torchattacks (``torchattacks.FGSM`` 3.5.1 when it can
  be installed into a separate ``--target`` directory, else a bare per-ε loop; the output says
  which).
* ``pgd`` — 40-step PGD with cross-entropy and the penultimate-feature attack (fixed neuron)
  against bare PyTorch loops of identical math (outputs are checked to be bit-identical).
* ``train`` — optimizer steps/s of ``transferguard.training.fit`` for ``ft``, ``delta`` and the
  Renofeation main stage against a bare loop of identical math (DTN 32×32 batch 128 and
  EfficientNet-Lite0 64×64 batch 32; final weights are checked to be bit-identical), and the
  Renofeation/fine-tune step-cost ratio.
* ``startup`` — seconds from launching ``transferguard`` to its one-line error on common error
  paths (an unknown experiment or domain, a bad ε, a finished ``--out``, a missing model file)
  against a 1 s budget, with ``--help`` for reference.
* ``demo`` (opt-in, slow: ``--demo`` or ``--only demo``) — wall time and peak RSS of
  ``transferguard reproduce demo`` into a temporary --out and --store, so it really trains.

Usage::

    python benchmarks/run.py                 # everything but the demo (what `make bench` runs)
    python benchmarks/run.py --demo          # ... plus the demo (5-10 minutes more)
    python benchmarks/run.py --quick         # smoke run: fewer repetitions, smaller work
    python benchmarks/run.py --only pgd --threads 1
    python benchmarks/run.py --quick --only startup --out-dir /tmp/bench   # results elsewhere

Results are printed as a table and written to ``benchmarks/latest.json`` and ``latest.md``
(or ``--out-dir``; groups not run this time keep their previous entries, marked with their own
date).

Layout: this file is the entry point only (options, running the chosen groups, writing the
results). ``harness.py`` holds what groups share (``Row``, ``Settings``, ``interleaved``,
``paired_ratio``, ``make_model``, ``table``, ``write_results``); ``groups/NAME.py`` holds one
group each, with ``run(s: Settings) -> list[Row]``. To add a group (say ``audit``): write
``groups/audit.py`` with a docstring and ``run``, and register it with one line in ``GROUPS``
(``groups/__init__.py``); ``--only audit`` then accepts it and a plain run includes it (unless
the module sets ``DEFAULT = False``, as ``demo`` does).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# harness.py and groups/ are plain files next to this one, not an installed package: importable
# however run.py is started (``python benchmarks/run.py``, or loaded by path as the tests do).
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from groups import GROUPS  # noqa: E402
from harness import Row, Settings, machine, table, write_results  # noqa: E402


def _groups_help() -> str:
    """The registered groups for ``--help``: each module docstring's first line."""
    lines = [(m.__doc__ or name).strip().splitlines()[0].replace("``", "")
             for name, m in GROUPS.items()]
    return "benchmark groups:\n" + "\n".join(f"  {line}" for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=_groups_help(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", action="append", choices=list(GROUPS), help="run only this benchmark "
                   "group (repeatable)")
    p.add_argument("--demo", action="store_true", help="also run the slow demo benchmark")
    p.add_argument("--quick", action="store_true", help="fewer repetitions, smaller work")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per case (training rows included)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-install", action="store_true",
                   help="do not pip-install torchattacks into the benchmark's own folder")
    p.add_argument("--no-torchattacks", action="store_true",
                   help="use the bare per-ε stand-in loop even when torchattacks is available")
    p.add_argument("--no-malloc-tuning", action="store_true",
                   help="keep glibc's default malloc thresholds (the CLI raises them)")
    p.add_argument("--out-dir", type=Path, default=HERE, help="where latest.json/.md go")
    p.add_argument("--gpu-part", action="append", choices=Settings.gpu_parts,
                   help="gpu group: run only this part (repeatable; default: all three)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # The CLI runs with raised glibc malloc thresholds (transferguard._allocator); so do we, for
    # both sides of every comparison. Without it evaluation-heavy rows swing by up to 20 % with
    # the process's allocation history (page faults on fresh mmaps). --no-malloc-tuning: off.
    tuned = False
    if not args.no_malloc_tuning:
        from transferguard._allocator import tune_malloc

        tuned = tune_malloc()
    s = Settings.quick() if args.quick else Settings()
    if args.reps:
        s.reps = s.train_reps = args.reps
    s.install_torchattacks = not args.no_install
    s.use_torchattacks = not args.no_torchattacks
    if args.gpu_part:
        s.gpu_parts = tuple(args.gpu_part)
    # A plain run takes every group but those with DEFAULT = False; --demo adds the demo.
    names = args.only or [g for g, module in GROUPS.items()
                           if getattr(module, "DEFAULT", True) or (g == "demo" and args.demo)]
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    groups: dict[str, dict[str, Any]] = {}
    all_rows: list[Row] = []
    for name in names:
        load_before = round(os.getloadavg()[0], 2)
        t0 = time.perf_counter()
        rows = GROUPS[name].run(s)
        groups[name] = {"command": command.strip(), "date": dt.datetime.now(dt.UTC).isoformat(
            timespec="seconds"), "machine": machine(), "load_before": load_before,
            "load_after": round(os.getloadavg()[0], 2), "seconds": round(time.perf_counter() - t0, 1),
            "reps": s.reps, "train_reps": s.train_reps, "malloc_tuned": tuned,
            "quick": args.quick, "rows": [asdict(r) for r in rows]}
        all_rows += rows
        print(f"[{name}] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(table(all_rows))
    write_results(groups, args.out_dir, order=list(GROUPS))
    failed = [r.benchmark for r in all_rows if r.passed is False]
    print(f"\n{len(all_rows)} rows, {len(failed)} below target"
          + (": " + "; ".join(failed) if failed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

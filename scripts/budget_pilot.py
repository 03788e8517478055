"""Size a training budget before a run: train one model of an experiment at k times its budget.

A pilot, not part of any claim: it trains seed ``--seed`` of one method row of one paper-2
experiment's family on one target domain, with the row's iterations multiplied by ``--factor``,
into its own store (``--store``, default a scratch folder under /tmp), and prints where the best
validation accuracy came and whether the run plateaued (``training.convergence.plateaued``).
Use it to choose budgets *before* the seeds of a claim are run, never after seeing a verdict.

    python scripts/budget_pilot.py reno-table2 imagenet mnist5k fine-tune --factor 4
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from transferguard.experiments import Runner, Store
from transferguard.experiments.registry import EXPERIMENTS
from transferguard.experiments.spec import DataSpec
from transferguard.papers.paper2.run import target_spec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiment", help="a paper-2 experiment, e.g. reno-table2")
    p.add_argument("family", help="a family of its plan, e.g. imagenet or syn")
    p.add_argument("domain", help="a target domain of that family, e.g. mnist5k")
    p.add_argument("method", help="a method row's label, e.g. fine-tune or re-training")
    p.add_argument("--factor", type=int, default=4, help="multiply the row's iterations (4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", default="/tmp/transferguard-budget-pilot")
    args = p.parse_args()
    plan = EXPERIMENTS[args.experiment].plan("offline", 1)
    fam = next(f for f in plan.families if f.family == args.family)
    row = next(m for m in fam.methods if m.label == args.method)
    data = next(DataSpec(**t) for t in fam.targets if t["domain"] == args.domain)
    row = replace(row, train={**row.train, "iterations": row.train["iterations"] * args.factor})
    spec = target_spec(fam, fam.arch, data, row, args.seed)
    t0 = time.time()
    Runner(Store(args.store), device="cpu", progress=False).model(spec)
    meta = json.loads((Path(args.store) / "models" / f"{spec.key()}.json").read_text())
    print(f"{args.experiment} {args.family} {args.domain} {args.method} x{args.factor} "
          f"(seed {args.seed}): {meta['iterations_run']} iterations, best validation "
          f"{meta['best_val_acc']:.3f} at iteration {meta['best_iteration']}, plateaued "
          f"{meta['plateaued']}, {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

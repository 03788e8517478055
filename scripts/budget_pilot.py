"""Size a training budget before a run: train one model of an experiment at k times its budget.

A pilot, not part of any claim: it trains seed ``--seed`` of one model of an experiment's plan
with that model's iterations multiplied by ``--factor`` (its ancestors at the plan's budgets)
into its own store (``--store``, default a scratch folder under /tmp), and prints where the best
validation accuracy came and whether the run plateaued (``training.convergence.plateaued``).
Use it to choose budgets *before* the seeds of a claim are run, never after seeing a verdict.

A paper-2 model is named by family, target domain and method row; a paper-1 model by task and
role (A_scratch, B_scratch, B_ft, C, A_commoninit, B_commoninit):

    python scripts/budget_pilot.py reno-table2 imagenet mnist5k fine-tune --factor 4
    python scripts/budget_pilot.py reno-table2 syn source --factor 4   # a trained source
    python scripts/budget_pilot.py fig9 "Syn→M WRN-16-2" A_scratch --factor 5
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

from transferguard.experiments import Runner, Store
from transferguard.experiments.registry import EXPERIMENTS
from transferguard.experiments.spec import DataSpec, ModelSpec
from transferguard.papers.paper1.run import model_specs
from transferguard.papers.paper2.run import source_spec, target_spec
from transferguard.training.convergence import plateaued


def _paper2_spec(plan: Any, family: str, *model: str, factor: int, seed: int) -> ModelSpec:
    fam = next(f for f in plan.families if f.family == family)
    if model == ("source",):  # the family's trained attack source (the targets' parent)
        spec = source_spec(fam, fam.arch, seed)
        return spec.with_(train=replace(spec.train, iterations=spec.train.iterations * factor))
    domain, method = model
    row = next(m for m in fam.methods if m.label == method)
    data = next(DataSpec(**t) for t in fam.targets if t["domain"] == domain)
    row = replace(row, train={**row.train, "iterations": row.train["iterations"] * factor})
    return target_spec(fam, fam.arch, data, row, seed)


def _paper1_spec(plan: Any, task: str, role: str, factor: int, seed: int) -> ModelSpec:
    spec = model_specs(plan, next(t for t in plan.tasks if t.task == task), seed)[role]
    return spec.with_(train=replace(spec.train, iterations=spec.train.iterations * factor))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiment", help="an experiment, e.g. reno-table2 or fig9")
    p.add_argument("model", nargs="+",
                   help="paper 2: FAMILY DOMAIN METHOD (imagenet mnist5k fine-tune) or FAMILY source; "
                        "paper 1: TASK ROLE (\"Syn→M DTN\" A_scratch)")
    p.add_argument("--factor", type=int, default=4, help="multiply the model's iterations (4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None, help="replace the model's learning rate")
    p.add_argument("--store", default="/tmp/transferguard-budget-pilot")
    args = p.parse_args()
    exp = EXPERIMENTS[args.experiment]
    plan = exp.plan("offline", 1)
    if exp.paper == "paper1":
        spec = _paper1_spec(plan, *args.model, args.factor, args.seed)
    else:
        spec = _paper2_spec(plan, *args.model, factor=args.factor, seed=args.seed)
    if args.lr is not None:
        spec = spec.with_(train=replace(spec.train, lr=args.lr))
    t0 = time.time()
    _, meta = Runner(Store(args.store), device="cpu", progress=False).model(spec)
    history = [{"iteration": i, "val_acc": a, "phase": ph} for i, a, ph in meta["val_history"]]
    base = spec.train.iterations // args.factor
    for k in range(1, args.factor + 1):  # would a run cut at k × the budget have plateaued?
        cut = [h for h in history if h["iteration"] <= k * base]
        best = max((h["val_acc"] for h in cut), default=float("nan"))
        print(f"  cut at x{k} ({k * base} iterations): best {best:.3f}, plateaued "
              f"{plateaued(cut, meta.get('n_val'))}")
    print(f"{args.experiment} {' '.join(args.model)} x{args.factor} lr {spec.train.lr} "
          f"(seed {args.seed}): "
          f"{meta['iterations_run']} iterations, best validation {meta['best_val_acc']:.3f} at "
          f"iteration {meta['best_iteration']}, plateaued {meta['plateaued']}, "
          f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

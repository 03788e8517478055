"""The first paper's experiments (Scratch / FT / CommonInit; white-box and black-box FGSM; γ).

One function, :func:`run_transfer_grid`, computes every figure of the paper from a plan: for each
task (Domain A → Domain B, optional Domain C), strategy and seed it trains (or loads) Model A and
Model B, evaluates Model B on Domain B's test split clean, under white-box FGSM, and under
black-box FGSM crafted on Model A with the true labels, and derives γ. The figures differ only in
their plans (which tasks, strategies, sample sizes, architectures).

Strategies (paper, Section 3.2):

* ``scratch``: A and B each trained from random initialisation;
* ``ft``: B initialised from A (head re-initialised only if the class counts differ);
* ``commoninit``: A and B both initialised from a Model C trained on Domain C.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import torch

from ...attacks import craft_in_batches, fgsm_sweep, predict, transfer_predictions
from ...evaluation import (
    adversarial_accuracy,
    attack_metrics,
    input_gradient_norms,
    transferability_gamma,
)
from ...experiments.spec import DataSpec, ModelSpec, TrainSpec
from ...results import CLEAN, Metric, Threat, attack_name, normalise_attack_names
from .plan import Paper1Plan, Task

log = logging.getLogger(__name__)

EPS_255 = (1, 2, 4, 8, 16, 32)
STRATEGIES = ("scratch", "ft", "commoninit")
#: White-box FGSM on Model B, and FGSM crafted on Model A and transferred to Model B.
FGSM_WHITE = attack_name("fgsm", Threat.WHITE)
FGSM_TRANSFER = attack_name("fgsm", Threat.TRANSFER)


# ----------------------------------------------------------------------------- plans
def make_task(a: DataSpec, b: DataSpec, c: DataSpec | None = None, *, name: str | None = None,
              arch: str = "dtn", vary: Any = None,
              train: dict[str, TrainSpec] | None = None) -> Task:
    """One (Domain A, Domain B, Domain C) task of a plan; ``train`` replaces the plan's budgets
    of the roles it names (source, common, target, finetune) for this task only."""
    label = name or f"{a.domain}→{b.domain}"
    return Task(label, arch, asdict(a), asdict(b), asdict(c) if c is not None else None, vary,
                {k: asdict(v) for k, v in train.items()} if train else None)


def make_plan(name: str, scale: str, seeds: int, tasks: list[Task], *,
              strategies: tuple[str, ...], train: dict[str, TrainSpec],
              eps_255: tuple[float, ...] = EPS_255, black_box: bool = True,
              hp_grid: tuple[tuple[float, float], ...] = (), grad_norms: bool = False,
              eval_batch: int = 500, vary: str | None = None, notes: str = "") -> Paper1Plan:
    """The plan of everything :func:`run_transfer_grid` computes."""
    if "commoninit" in strategies and any(t.C is None for t in tasks):
        raise ValueError("commoninit needs a Domain C in every task")
    return Paper1Plan(
        experiment=name, scale=scale, seeds=tuple(range(seeds)), tasks=tuple(tasks),
        strategies=tuple(strategies), train={k: asdict(v) for k, v in train.items()},
        eps=tuple(e / 255 for e in eps_255), eps_255=tuple(eps_255), black_box=black_box,
        hp_grid=tuple(tuple(p) for p in hp_grid), grad_norms=grad_norms, eval_batch=eval_batch,
        vary=vary, notes=notes)


# ------------------------------------------------------------------------ model specs
def model_specs(plan: Paper1Plan, task: Task, seed: int) -> dict[str, ModelSpec]:
    """The ModelSpecs of one task and seed: A, B for each strategy, and C."""
    tr = {k: TrainSpec(**v) for k, v in {**plan.train, **(task.train or {})}.items()}
    grid = plan.hp_grid
    arch = task.arch
    a, b = DataSpec(**task.A), DataSpec(**task.B)

    def spec(data: DataSpec, method: str, parent: ModelSpec | None, train: TrainSpec,
             label: str) -> ModelSpec:
        return ModelSpec(data=data, arch=arch, method=method, parent=parent, train=train,
                         hp_grid=grid, seed=seed, label=label)

    specs: dict[str, ModelSpec] = {}
    specs["A_scratch"] = spec(a, "scratch", None, tr["source"], f"A scratch {a.domain}")
    specs["B_scratch"] = spec(b, "scratch", None, tr["target"], f"B scratch {b.domain}")
    specs["B_ft"] = spec(b, "ft", specs["A_scratch"], tr["finetune"], f"B ft {a.domain}→{b.domain}")
    if task.C is not None and "commoninit" in plan.strategies:
        c = DataSpec(**task.C)
        specs["C"] = spec(c, "scratch", None, tr.get("common", tr["source"]), f"C scratch {c.domain}")
        specs["A_commoninit"] = spec(a, "commoninit", specs["C"], tr["finetune"],
                                     f"A commoninit {c.domain}→{a.domain}")
        specs["B_commoninit"] = spec(b, "commoninit", specs["C"], tr["finetune"],
                                     f"B commoninit {c.domain}→{b.domain}")
    return specs


def strategy_pair(specs: dict[str, ModelSpec], strategy: str) -> tuple[ModelSpec, ModelSpec]:
    """(Model A, Model B) of a strategy: A crafts the black-box attack, B is attacked."""
    if strategy == "scratch":
        return specs["A_scratch"], specs["B_scratch"]
    if strategy == "ft":
        return specs["A_scratch"], specs["B_ft"]
    if strategy == "commoninit":
        return specs["A_commoninit"], specs["B_commoninit"]
    raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")


# ------------------------------------------------------------------------- evaluation
def _test_data(runner: Any, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    dom = runner.domain(DataSpec(**task.B))
    return dom.test.images(), dom.test.y


def _craft_fgsm(runner: Any, spec: ModelSpec, task: Task, plan: Paper1Plan
                ) -> dict[float, torch.Tensor]:
    """FGSM ε-sweep crafted on ``spec``'s model against Domain B's test set with true labels."""
    def craft() -> dict[float, torch.Tensor]:
        model, _ = runner.model(spec)
        x, y = _test_data(runner, task)
        swept = craft_in_batches(lambda xb, yb: fgsm_sweep(model, xb, yb, list(plan.eps)), x, y,
                                 plan.eval_batch, False, device=runner.device)
        return {e: swept[e] for e in plan.eps}  # keyed by the plan's ε values, in its order

    return runner.crafted({"fgsm": spec.key(), "data": task.B, "eps": list(plan.eps)}, craft)


def evaluate_strategy(runner: Any, plan: Paper1Plan, task: Task, strategy: str,
                      seed: int) -> list[dict[str, Any]]:
    """All rows of one (task, strategy, seed): clean, white-box (``fgsm-white``), black-box FGSM
    crafted on Model A (``fgsm-transfer``), γ (+ gradient norms)."""
    specs = model_specs(plan, task, seed)
    src, tgt = strategy_pair(specs, strategy)
    unit = {"unit": "paper1-eval", "target": tgt.key(), "source": src.key(), "eps": list(plan.eps),
            "black_box": plan.black_box, "grad_norms": plan.grad_norms, "data": task.B}

    def compute() -> list[dict[str, Any]]:
        model, _ = runner.model(tgt)
        x, y = _test_data(runner, task)
        clean = predict(model, x.to(runner.device)).cpu()
        rows: list[dict[str, Any]] = [_row(CLEAN, 0.0, Metric.CLEAN_ACC,
                                             float((clean == y).float().mean()))]
        white = _craft_fgsm(runner, tgt, task, plan)
        a_w = {}
        for e in plan.eps:
            adv = predict(model, white[e].to(runner.device)).cpu()
            a_w[e] = adversarial_accuracy(clean, adv, y, convention="paper")
            rows += _adv_rows(FGSM_WHITE, e, clean, adv, y)
        if plan.black_box:
            runner.model(src)
            black = _craft_fgsm(runner, src, task, plan)
            for e in plan.eps:
                adv = transfer_predictions(black[e].to(runner.device), {"B": model})["B"].cpu()
                rows += _adv_rows(FGSM_TRANSFER, e, clean, adv, y)
                a_b = adversarial_accuracy(clean, adv, y, convention="paper")
                rows.append(_row(FGSM_TRANSFER, e, Metric.GAMMA, transferability_gamma(a_b, a_w[e])))
        if plan.grad_norms:
            norms = input_gradient_norms(model, x.to(runner.device), y.to(runner.device)).cpu()
            rows += [dict(_row(CLEAN, 0.0, Metric.GRAD_NORM, float(v)), sample=i)
                     for i, v in enumerate(norms.tolist())]
        return rows

    # a unit cached before issue 12 holds its rows as computed then (fgsm-black): renamed here
    rows = normalise_attack_names(runner.cached_eval(unit, compute))
    a, b = task.A, task.B
    dom_b = runner.domain(DataSpec(**b))
    common = {"experiment": plan.experiment, "task": task.task, "method": strategy,
              "arch": task.arch, "seed": seed, "domain_a": a["domain"], "domain_b": b["domain"],
              "n_a": a["n_train_per_class"], "n_b": b["n_train_per_class"],
              # the test images every rate is a fraction of, and chance = 1 / classes
              "n_images": len(dom_b.test.y), "n_classes": dom_b.num_classes,
              "source": src.key(), "target": tgt.key(), **runner.hp_columns(tgt)}
    if task.vary is not None:
        common["vary"] = task.vary
    # a clean or white-box rate rests on Model B's lineage; a black-box one on Model A's too
    upstream = {False: runner.upstream_unfinished(tgt), True: runner.upstream_unfinished(tgt, src)}
    return [{**common, **r, "upstream_unfinished": upstream[r["attack"] == str(FGSM_TRANSFER)]}
            for r in rows]


def _row(attack: str, eps: float, metric: str, value: float) -> dict[str, Any]:
    return {"attack": str(attack), "eps": eps, "metric": str(metric), "value": value}


def _adv_rows(attack: str, eps: float, clean: torch.Tensor, adv: torch.Tensor,
              y: torch.Tensor) -> list[dict[str, Any]]:
    return [_row(attack, eps, k, v) for k, v in attack_metrics(clean, adv, y).items()]


def needed_models(plan: Paper1Plan) -> list[ModelSpec]:
    """Every model the plan evaluates (Model B of each strategy, and Model A for black-box)."""
    out = []
    for seed in plan.seeds:
        for task in plan.tasks:
            specs = model_specs(plan, task, seed)
            for strategy in plan.strategies:
                src, tgt = strategy_pair(specs, strategy)
                out += [tgt, src] if plan.black_box else [tgt]
    return out


def run_transfer_grid(runner: Any, plan: Paper1Plan) -> list[dict[str, Any]]:
    """Compute every (task, strategy, seed) of the plan; rows in a stable order."""
    runner.train_all(needed_models(plan))
    rows: list[dict[str, Any]] = []
    for seed in plan.seeds:
        for task in plan.tasks:
            for strategy in plan.strategies:
                log.info("%s: %s / %s / seed %d", plan.experiment, task.task, strategy, seed)
                rows += evaluate_strategy(runner, plan, task, strategy, seed)
    return rows

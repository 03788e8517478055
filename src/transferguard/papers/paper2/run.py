"""The second paper's experiments (Renofeation): transfer methods vs the penultimate-feature attack.

For every target domain, every method row of the plan trains a target model from the public
source model (the "pre-trained" model), and the feature attack of Rezaei et al. is crafted on the
source model **alone**, once per domain, then evaluated on every target. Beside it, a uniform-noise
control of the same ε is evaluated, so a reader sees how much of an ASR is attack and how much is
fragility to any perturbation.

Rows per target: ``clean_acc``; ``asr`` and ``adv_acc_cond`` for the feature attack and for the noise
control (at the plan's ε, then at every ε of its optional ``eps_sweep``, a sensitivity analysis the
reports keep apart from the paper's claims); ``weight_distance`` and ``feature_distance`` to the
source (Figure 1); ``feature_loss`` (the feature-distillation loss on the training data, Table 7).

A plan with a ``suite`` entry (``{"budget": "fast" | "thorough"}``, e.g. ``reno-adaptive``) also
runs every attack of the registry's transfer suite (:func:`transferguard.attacks.transfer_suite`:
the label-based ones only when the source's classes are the target's) at the plan's ε, crafted
on the source alone under that budget, as ``NAME-transfer`` rows with the counts ``n_correct`` /
``n_fooled`` behind each ASR (also for the paper's attack and the noise control).
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import asdict
from typing import Any

import torch

from ... import attacks
from ...attacks import feature_attack, predict, transfer_predictions, uniform_noise
from ...evaluation import (
    adversarial_accuracy,
    attack_success_rate,
    feature_distance,
    feature_distillation_loss,
    weight_distance,
)
from ...experiments.runner import PRETRAINED
from ...experiments.spec import DataSpec, ModelSpec, TrainSpec
from ...results import CLEAN, NOISE, PAPER2_FEATURE, Metric, Threat, attack_name
from .plan import Family, MethodRow, Paper2Plan, Source

log = logging.getLogger(__name__)


def method_row(label: str, method: str, train: TrainSpec, **options: Any) -> MethodRow:
    """One method row of a plan: a display label, a registered method and its options."""
    return MethodRow(label, method, options, asdict(train))


def pretrained_source(arch: str, weights: str | bool = True) -> Source:
    return Source(PRETRAINED, arch, weights=weights)


def trained_source(data: DataSpec, arch: str, train: TrainSpec) -> Source:
    return Source("trained", arch, data=asdict(data), train=asdict(train))


def make_plan(name: str, scale: str, seeds: int, *, source: Source, arch: str,
              targets: list[DataSpec], methods: list[MethodRow], attack: dict[str, Any],
              n_test: int | None = None, distances: bool = True, feature_loss: bool = False,
              archs: list[str] | None = None, eps_sweep: list[float] | None = None,
              suite: str | None = None, notes: str = "") -> Family:
    """One family's plan for :func:`run_method_grid` (its ``family`` label is set by the caller).

    ``eps_sweep``: further ε (pixel units) at which the same attack and noise are evaluated too.
    ``suite``: an attack budget name (:data:`transferguard.attacks.BUDGETS`); the transfer
    suite then runs too, at the plan's ε.
    """
    return Family(
        experiment=name, scale=scale, seeds=tuple(range(seeds)), source=source, arch=arch,
        archs=tuple(archs or [arch]), targets=tuple(asdict(t) for t in targets),
        methods=tuple(methods), attack=attack, eps_sweep=tuple(eps_sweep or ()), n_test=n_test,
        distances=distances, feature_loss=feature_loss, notes=notes,
        # only with a suite: the other experiments' plans (and cache keys) stay as they were
        suite={"budget": suite, **asdict(attacks.BUDGETS[suite])} if suite is not None else None)


def source_spec(plan: Family, arch: str, seed: int) -> ModelSpec:
    src = plan.source
    if src.kind == PRETRAINED:
        return ModelSpec(data=DataSpec("imagenet"), arch=arch, method=PRETRAINED,
                         pretrained=str(src.weights) if src.weights is not True else None,
                         label=f"pre-trained {arch}")
    assert src.data is not None and src.train is not None
    return ModelSpec(data=DataSpec(**src.data), arch=arch, method="scratch",
                     train=TrainSpec(**src.train), seed=seed, label=f"source {src.data['domain']}")


def target_spec(plan: Family, arch: str, data: DataSpec, row: MethodRow, seed: int) -> ModelSpec:
    return ModelSpec(data=data, arch=arch, method=row.method, parent=source_spec(plan, arch, seed),
                     method_options=dict(row.options), train=TrainSpec(**row.train), seed=seed,
                     label=f"{row.label} {data.domain}")


def _test(runner: Any, data: DataSpec, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    dom = runner.domain(data)
    x, y = dom.test.images(), dom.test.y
    return (x[:n], y[:n]) if n else (x, y)


def _crafted(runner: Any, plan: Family, src: ModelSpec, data: DataSpec, kind: str,
             seed: int, eps: float) -> torch.Tensor:
    """The feature-attack (or noise) batch on ``data``'s test images, crafted on the source only.

    ``eps`` is the plan's attack budget or one of its sweep's; everything else is the plan's.
    """
    atk = {**plan.attack, "eps": eps}

    def craft() -> torch.Tensor:
        x, _ = _test(runner, data, plan.n_test)
        gen = torch.Generator().manual_seed(seed)
        if kind == NOISE:
            return uniform_noise(x, atk["eps"], generator=gen)
        model, _ = runner.model(src)
        return attacks.craft_in_batches(
            lambda xb: feature_attack(model, xb, atk["eps"], steps=atk["steps"],
                                      step_size=atk["step_size"], m=atk["m"], neuron=atk["neuron"],
                                      restarts=atk.get("restarts", 1), generator=gen),
            x, None, int(atk.get("batch_size", 64)), False, device=runner.device)

    return runner.crafted({"kind": kind, "source": src.key(), "test": data.test_identity(),
                           "attack": atk, "n": plan.n_test, "seed": seed}, craft)


def shares_labels(runner: Any, plan: Family, data: DataSpec) -> bool:
    """The source was trained on the same classes as ``data`` (label-based attacks apply)."""
    src = plan.source
    if src.kind == PRETRAINED or src.data is None:
        return False
    return list(runner.domain(DataSpec(**src.data)).classes) == list(runner.domain(data).classes)


def _suite_crafted(runner: Any, plan: Family, src: ModelSpec, data: DataSpec,
                   entry: attacks.AttackEntry, seed: int) -> torch.Tensor:
    """One suite attack's batch on ``data``'s test images, crafted on the source under the plan's
    budget (an own random stream per attack; a public source gives every seed the same batch)."""
    suite = plan.suite
    assert suite is not None
    budget = attacks.AttackBudget(**{k: v for k, v in suite.items() if k != "budget"})
    eps = float(plan.attack["eps"])
    public = plan.source.kind == PRETRAINED
    draw_seed = (0 if public else seed) * 7919 + zlib.crc32(entry.name.encode()) % 100_003

    def craft() -> torch.Tensor:
        x, y = _test(runner, data, plan.n_test)
        model, _ = runner.model(src)
        opts = {**attacks.suite_options(entry, budget, model), "eps": eps,
                "generator": torch.Generator().manual_seed(draw_seed)}
        bs = int(plan.attack.get("batch_size", 64))
        return attacks.craft_in_batches(lambda xb, yb=None: entry(model, xb, yb, **opts), x,
                                        y if entry.needs_labels else None, bs, False,
                                        device=runner.device, desc=entry.name)

    return runner.crafted({"kind": f"suite:{entry.name}", "source": src.key(),
                           "test": data.test_identity(), "eps": eps, "budget": suite,
                           "n": plan.n_test, "seed": None if public else seed}, craft)


def _counts(clean: torch.Tensor, adv: torch.Tensor, y: torch.Tensor) -> list[tuple[Metric, int]]:
    correct = clean == y
    return [(Metric.N_CORRECT, int(correct.sum())),
            (Metric.N_FOOLED, int((correct & (adv != y)).sum()))]


def evaluate_target(runner: Any, plan: Family, arch: str, data: DataSpec,
                    row: MethodRow, seed: int) -> list[dict[str, Any]]:
    tgt = target_spec(plan, arch, data, row, seed)
    src = tgt.parent
    assert src is not None
    sweep = [float(e) for e in plan.eps_sweep]
    unit = {"unit": "paper2-eval", "target": tgt.key(), "source": src.key(), "attack": plan.attack,
            "n": plan.n_test, "distances": plan.distances, "feature_loss": plan.feature_loss,
            "seed": seed, **({"eps_sweep": sweep} if sweep else {}),
            **({"suite": plan.suite} if plan.suite else {})}

    def compute() -> list[dict[str, Any]]:
        model, _ = runner.model(tgt)
        x, y = _test(runner, data, plan.n_test)
        clean = predict(model, x.to(runner.device)).cpu()
        rows = [_row(CLEAN, 0.0, Metric.CLEAN_ACC, float((clean == y).float().mean()))]
        for eps in [plan.attack["eps"], *sweep]:
            for kind in (PAPER2_FEATURE, NOISE):
                adv_x = _crafted(runner, plan, src, data, kind, seed, eps)
                adv = transfer_predictions(adv_x.to(runner.device), {"t": model})["t"].cpu()
                rows.append(_row(kind, eps, Metric.ASR, attack_success_rate(clean, adv, y)))
                rows.append(_row(kind, eps, Metric.ADV_ACC_COND,
                                 adversarial_accuracy(clean, adv, y, convention="conditional")))
                if plan.suite and eps == plan.attack["eps"]:
                    rows += [_row(kind, eps, m, v) for m, v in _counts(clean, adv, y)]
        if plan.suite:
            eps = float(plan.attack["eps"])
            rows.append(_row(CLEAN, 0.0, Metric.N_CLASSES, len(runner.domain(data).classes)))
            for entry in attacks.transfer_suite(shares_labels(runner, plan, data)):
                if entry.control:  # the noise control is already there
                    continue
                adv_x = _suite_crafted(runner, plan, src, data, entry, seed)
                adv = transfer_predictions(adv_x.to(runner.device), {"t": model})["t"].cpu()
                name = attack_name(entry.name, Threat.TRANSFER)
                rows.append(_row(name, eps, Metric.ASR, attack_success_rate(clean, adv, y)))
                rows += [_row(name, eps, m, v) for m, v in _counts(clean, adv, y)]
        if plan.distances or plan.feature_loss:
            source, _ = runner.model(src)
            dom = runner.domain(data)
            xt = dom.train.images()[:512].to(runner.device)
            if plan.distances:
                rows.append(_row(CLEAN, 0.0, Metric.WEIGHT_DISTANCE,
                                 float(weight_distance(model, source))))
                rows.append(_row(CLEAN, 0.0, Metric.FEATURE_DISTANCE,
                                 float(feature_distance(model, source, xt))))
            if plan.feature_loss:
                rows.append(_row(CLEAN, 0.0, Metric.FEATURE_LOSS,
                                 float(feature_distillation_loss(model, source, xt))))
        return rows

    rows = runner.cached_eval(unit, compute)
    common = {"experiment": plan.experiment, "task": data.domain, "method": row.label,
              "arch": arch, "seed": seed, "base_method": row.method, "target": tgt.key(),
              "source": src.key(), "n_b": data.n_train_per_class,
              # the test images every rate is a fraction of, and chance = 1 / classes
              "n_images": min(len(runner.domain(data).test.y), plan.n_test or math.inf),
              "n_classes": runner.domain(data).num_classes, **runner.hp_columns(tgt),
              # every attack is crafted on the source, which is the target's parent
              "upstream_unfinished": runner.upstream_unfinished(tgt)}
    return [{**common, **r} for r in rows]


def _row(attack: str, eps: float, metric: str, value: float) -> dict[str, Any]:
    return {"attack": str(attack), "eps": eps, "metric": str(metric), "value": value}


def run_method_grid(runner: Any, plan: Family) -> list[dict[str, Any]]:
    runner.train_all([target_spec(plan, arch, DataSpec(**t), row, seed) for seed in plan.seeds
                      for arch in plan.archs for t in plan.targets for row in plan.methods])
    rows: list[dict[str, Any]] = []
    for seed in plan.seeds:
        for arch in plan.archs:
            for t in plan.targets:
                data = DataSpec(**t)
                for row in plan.methods:
                    log.info("%s: %s / %s / %s / seed %d", plan.experiment, arch, data.domain,
                             row.label, seed)
                    rows += evaluate_target(runner, plan, arch, data, row, seed)
    return rows


def run_families(runner: Any, plan: Paper2Plan) -> list[dict[str, Any]]:
    """Run every family (source model) of a paper-2 plan; rows carry a ``family`` column."""
    rows: list[dict[str, Any]] = []
    for fam in plan.families:
        rows += [{**r, "family": fam.family} for r in run_method_grid(runner, fam)]
    return rows

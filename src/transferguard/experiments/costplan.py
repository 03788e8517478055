"""What a run will cost before it starts: ``transferguard reproduce NAME|all --plan``.

From an experiment's plan (exactly what :func:`~transferguard.experiments.reproduce.reproduce`
would run, seed shift included) this module enumerates the distinct models it trains (parents
included, public pre-trained models skipped), the evaluation units it computes and the adversarial
batches it crafts, each keyed as the runner keys it, and marks what the store already holds. It
loads no data and trains nothing: training-set sizes come from the per-class caps of each
:class:`DataSpec` and the nominal sizes of the data registry.

Work is counted in *step-images*: one image through one SGD step (forward + backward + update).
A forward-only image (evaluation, a frozen teacher) counts :data:`FORWARD_SHARE` of that, one
gradient step of an attack counts one. Seconds = step-images / images-per-second of the
architecture at the image size, from a short timed probe on this machine or from a named device
profile (:data:`PROFILES`). Every number is an estimate, not a promise: early stopping ends
training before its cap, small batches leave a GPU idle, and data loading, start-up and reports
are not counted.

Importing this module imports no torch; building the plans does (the paper modules need it) and
so does the probe.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._names import unknown_name
from ..errors import ConfigError
from .backends import waves
from .registry import EXPERIMENTS, get_experiment
from .reproduce import checked_request, resolved_plan
from .spec import DataSpec, ModelSpec, canonical_hash

log = logging.getLogger(__name__)

#: A forward-only pass costs about a third of a training step (backward ≈ twice the forward).
FORWARD_SHARE = 1 / 3

#: fp32 images/s of one SGD step through ``create_model`` on one NVIDIA H200, as measured with the
#: project's code: /work/shared/GPU.md ("Measured there"; batch 128 at 32 px, 64 at 224 px) and,
#: at the offline sizes and batches, the cost probe (``reproduce all --plan --profile here`` on
#: that GPU, 2026-11-30, ``scripts/gpu_session.sh``: EfficientNet-Lite0 at 64 px batch 32, where
#: per-step overheads, not pixels, set the rate; WRN-16-2 at 32 px batch 128).
#: Each entry is a tuple of (images/s, the image side it was measured at).
PROFILES: dict[str, dict[str, tuple[tuple[float, int], ...]]] = {
    "h200": {
        "dtn": ((36_506, 32),),
        "wrn-16-2": ((14_727, 32),),
        "wrn-28-10": ((4_055, 32),),
        "resnet18": ((4_733, 224),),
        "resnet50": ((1_979, 224),),
        "resnet101": ((1_281, 224),),
        "mobilenet_v2": ((2_394, 224),),
        "efficientnet_lite0": ((2_003, 224), (3_398, 64)),
    },
    # the same steps under bf16 autocast + channels_last (GPU.md, same table; the probe's bf16 plan)
    "h200-bf16": {
        "dtn": ((37_728, 32),),
        "wrn-16-2": ((20_267, 32),),
        "wrn-28-10": ((9_591, 32),),
        "resnet18": ((7_493, 224),),
        "resnet50": ((2_488, 224),),
        "resnet101": ((1_372, 224),),
        "mobilenet_v2": ((3_476, 224),),
        "efficientnet_lite0": ((2_923, 224), (3_339, 64)),
    },
}
#: The profile name that means "probe this machine".
HERE = "here"

#: Domains whose classes are the ten digits (the transfer suite's label-based attacks apply
#: between two of them); mirrors the readers in ``data/_digits.py``.
_DIGIT_DOMAINS = ("mnist5k", "ucidigits", "mnist", "usps", "svhn", "syndigits")

Rates = Callable[[str, int], "float | None"]


# ------------------------------------------------------------------------------- costs
@dataclass(frozen=True)
class ModelCost:
    """Training cost of one model (all its hyper-parameter trials)."""

    key: str
    label: str
    arch: str
    size: int
    iterations: int  # per trial, SWA stage included (an upper bound when ``capped``)
    trials: int
    batch_size: int
    capped: bool  # epochs with early stopping: ``iterations`` is the cap
    step_factor: float  # step-images per training image (teacher, PGD adversarial training)
    val_images: int  # validation images forwarded over all trials
    in_store: bool

    @property
    def images(self) -> int:
        return self.iterations * self.trials * self.batch_size

    @property
    def work(self) -> float:
        return self.images * self.step_factor + self.val_images * FORWARD_SHARE


@dataclass(frozen=True)
class CraftCost:
    """One adversarial batch, crafted once and shared through the store."""

    key: str
    arch: str
    size: int
    images: int
    passes: float  # gradient steps per image
    in_store: bool

    @property
    def work(self) -> float:
        return self.images * self.passes


@dataclass(frozen=True)
class EvalCost:
    """One evaluation unit: forward passes of the target (and what it needs crafted)."""

    key: str
    arch: str
    size: int
    work: float
    crafts: tuple[str, ...]
    in_store: bool


@dataclass
class ExperimentCost:
    """Every model, evaluation unit and crafted batch of one experiment's plan, by key."""

    name: str
    scale: str
    seeds: list[int]
    models: dict[str, ModelCost] = field(default_factory=dict)
    specs: dict[str, ModelSpec] = field(default_factory=dict)
    evals: dict[str, EvalCost] = field(default_factory=dict)
    crafts: dict[str, CraftCost] = field(default_factory=dict)

    def to_train(self) -> list[ModelCost]:
        return [m for m in self.models.values() if not m.in_store]

    def evals_to_run(self) -> list[EvalCost]:
        return [e for e in self.evals.values() if not e.in_store]

    def crafts_to_run(self) -> list[CraftCost]:
        """Batches an uncomputed evaluation unit needs and the store lacks."""
        keys = {k for e in self.evals_to_run() for k in e.crafts}
        return [self.crafts[k] for k in sorted(keys) if not self.crafts[k].in_store]


# ---------------------------------------------------------------------------- the store
def _store_root(store: str | os.PathLike | None) -> Path:
    """The store :class:`~transferguard.experiments.store.Store` would open (same rule as
    ``store.default_store_root``, repeated here so planning imports no torch and creates nothing)."""
    if store is not None:
        return Path(store)
    env = os.environ.get("TRANSFERGUARD_STORE")
    if env:
        return Path(env)
    cache = Path(os.environ.get("TRANSFERGUARD_CACHE", Path.home() / ".cache" / "transferguard"))
    return cache / "store"


class _StoreView:
    """Read-only existence checks on a store's layout (see ``store.py``); creates nothing."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def has_model(self, key: str) -> bool:
        stem = self.root / "models" / key
        return stem.with_suffix(".safetensors").is_file() and stem.with_suffix(".json").is_file()

    def has_eval(self, key: str) -> bool:
        return (self.root / "evals" / f"{key}.json").is_file()

    def has_crafted(self, key: str) -> bool:
        return (self.root / "crafted" / f"{key}.safetensors").is_file()


# -------------------------------------------------------------------------- data sizes
def _sizes(domain: str) -> dict[str, int]:
    """Nominal train / test / class counts of a domain, from the data registry's table
    (``DomainSpec.sizes``, e.g. MNIST 60,000 / 10,000, USPS 7,291 / 2,007, SVHN 73,257 / 26,032,
    CIFAR-10-9 45,000 / 9,000, STL-10-9 4,500 / 7,200, mnist5k 4,000 / 1,000, UCI digits
    1,437 / 360): nothing is loaded."""
    from ..data.registry import resolve_spec

    sizes = resolve_spec(domain)[0].sizes
    if not sizes:
        raise ConfigError(f"{domain}: its size is unknown without loading it; --plan cannot "
                          "estimate this experiment")
    return sizes


def split_sizes(data: DataSpec) -> tuple[int, int]:
    """(training, validation) images of ``data``: the per-class cap (or the whole training set)
    minus the validation fraction per class, as ``load_domain`` splits it."""
    s = _sizes(data.domain)
    per = s["train"] / s["classes"]
    if data.n_train_per_class is not None:
        per = min(per, data.n_train_per_class)
    val = round(data.val_fraction * per)
    if data.val_fraction > 0 and val == 0 and per >= 2:
        val = 1
    return int(round((per - val) * s["classes"])), int(round(val * s["classes"]))


def test_size(data: DataSpec, limit: int | None = None) -> int:
    """Test images of ``data`` (per-class cap, then the plan's ``n_test`` limit)."""
    s = _sizes(data.domain)
    n = s["test"] if data.n_test_per_class is None else min(
        s["test"], data.n_test_per_class * s["classes"])
    return min(n, limit) if limit else n


def _shares_labels(a: str, b: str) -> bool:
    digit = lambda d: d.split(":")[0] in _DIGIT_DOMAINS  # noqa: E731
    return a == b or (digit(a) and digit(b))


# ---------------------------------------------------------------------------- models
def _with_parents(specs: Iterable[ModelSpec]) -> dict[str, ModelSpec]:
    """Distinct trained specs by key, parents included, public pre-trained models skipped."""
    out: dict[str, ModelSpec] = {}
    todo = list(specs)
    while todo:
        spec = todo.pop()
        if spec.method == "pretrained" or spec.key() in out:
            continue
        out[spec.key()] = spec
        if spec.parent is not None:
            todo.append(spec.parent)
    return out


def model_cost(spec: ModelSpec, in_store: bool) -> ModelCost:
    """Iterations, trials and work of training ``spec`` (mirrors ``training.loop``)."""
    from ..methods import create_method

    tr = spec.train
    n_train, n_val = split_sizes(spec.data)
    per_epoch = max(1, n_train // tr.batch_size)  # TrainConfig.iterations_per_epoch
    main = tr.iterations if tr.iterations is not None else max(1, math.ceil(tr.epochs * per_epoch))
    method = create_method(spec.method, **spec.method_options)
    swa = tr.swa if tr.swa is not None else ({} if method.swa else None)
    swa_iters = 0 if swa is None else int(swa.get("iterations") or max(1, main // 3))
    iters = main + swa_iters
    factor = 1 + (FORWARD_SHARE if method.needs_teacher else 0.0)
    if tr.adv_train:  # PGD-k on the batch, then a step on clean + adversarial ("mix") images
        mult = 2 if tr.adv_train.get("mode", "mix") == "mix" else 1
        factor = factor * mult + int(tr.adv_train.get("steps", 3))
    trials = max(1, len(spec.hp_grid))
    evals = math.ceil(iters / (tr.eval_every or per_epoch))
    return ModelCost(spec.key(), spec.describe(), spec.arch, spec.data.size, iters, trials,
                     tr.batch_size, tr.iterations is None and tr.patience is not None, factor,
                     evals * n_val * trials, in_store)


def trained_specs(paper: str, plan: Any) -> dict[str, ModelSpec]:
    """Every model ``plan`` trains (parents included), by key."""
    if paper == "paper1":
        from ..papers.paper1.run import needed_models

        return _with_parents(needed_models(plan))
    from ..papers.paper2.run import target_spec

    return _with_parents(
        target_spec(fam, arch, DataSpec(**t), row, seed) for fam in plan.families
        for seed in fam.seeds for arch in fam.archs for t in fam.targets for row in fam.methods)


# ---------------------------------------------------------------- evaluation / crafting
def _paper1_evals(plan: Any, exp: ExperimentCost, view: _StoreView) -> None:
    """Per (task, strategy, seed): one unit, a white-box FGSM sweep crafted on Model B and, with
    ``black_box``, one crafted on Model A (keys as in ``papers.paper1.run.evaluate_strategy``)."""
    from ..papers.paper1.run import model_specs, strategy_pair

    eps = list(plan.eps)
    for seed in plan.seeds:
        for task in plan.tasks:
            specs = model_specs(plan, task, seed)
            n = test_size(DataSpec(**task.B))
            for strategy in plan.strategies:
                src, tgt = strategy_pair(specs, strategy)
                crafts = [tgt] + ([src] if plan.black_box else [])
                keys = []
                for m in crafts:
                    key = canonical_hash({"fgsm": m.key(), "data": task.B, "eps": eps})
                    exp.crafts[key] = CraftCost(key, m.arch, m.data.size, n, 1.0,
                                                view.has_crafted(key))
                    keys.append(key)
                unit = {"unit": "paper1-eval", "target": tgt.key(), "source": src.key(),
                        "eps": eps, "black_box": plan.black_box, "grad_norms": plan.grad_norms,
                        "data": task.B}
                forwards = n * (1 + len(eps) * (2 if plan.black_box else 1))
                work = forwards * FORWARD_SHARE + (n if plan.grad_norms else 0)
                key = canonical_hash(unit)
                exp.evals[key] = EvalCost(key, tgt.arch, tgt.data.size, work, tuple(keys),
                                          view.has_eval(key))


def _suite_passes(name: str, suite: dict[str, Any]) -> float:
    """Rough gradient steps per image of one transfer-suite attack under its budget."""
    steps = int(suite["steps"])
    return {"noise": 0.0, "fgsm": 1.0, "feature": float(suite["feature_steps"] * suite["candidates"]),
            "fia": float(steps + suite.get("fia_ensemble", 0)), "ila": 2.0 * steps}.get(name, steps)


def _paper2_evals(plan: Any, exp: ExperimentCost, view: _StoreView) -> None:
    """Per (family, seed, arch, target, method): one unit; the feature attack (and its noise
    control) crafted on the source per (target data, ε, seed); the suite when the plan names one
    (keys as in ``papers.paper2.run.evaluate_target``)."""
    from ..attacks.registry import SUITE
    from ..papers.paper2.run import target_spec

    for fam in plan.families:
        atk, sweep, suite = fam.attack, [float(e) for e in fam.eps_sweep], fam.suite
        public = fam.source.kind == "pretrained"
        for seed in fam.seeds:
            for arch in fam.archs:
                for t in fam.targets:
                    data = DataSpec(**t)
                    n = test_size(data, fam.n_test)
                    for row in fam.methods:
                        tgt = target_spec(fam, arch, data, row, seed)
                        src = tgt.parent
                        assert src is not None
                        keys, forwards = [], n
                        for eps in [atk["eps"], *sweep]:
                            for kind in ("feature", "noise"):
                                key = canonical_hash({"kind": kind, "source": src.key(),
                                                      "test": data.test_identity(),
                                                      "attack": {**atk, "eps": eps},
                                                      "n": fam.n_test, "seed": seed})
                                passes = 0.0 if kind == "noise" else float(
                                    atk["steps"] * atk.get("restarts", 1))
                                exp.crafts[key] = CraftCost(key, src.arch, data.size, n, passes,
                                                            view.has_crafted(key))
                                keys.append(key)
                                forwards += n
                        if suite:
                            src_domain = (fam.source.data or {}).get("domain", "imagenet")
                            shared = not public and _shares_labels(src_domain, data.domain)
                            for name, entry in SUITE.items():
                                if entry.control or (entry.needs_labels and not shared):
                                    continue
                                key = canonical_hash({"kind": f"suite:{name}", "source": src.key(),
                                                      "test": data.test_identity(),
                                                      "eps": float(atk["eps"]), "budget": suite,
                                                      "n": fam.n_test,
                                                      "seed": None if public else seed})
                                exp.crafts[key] = CraftCost(key, src.arch, data.size, n,
                                                            _suite_passes(name, suite),
                                                            view.has_crafted(key))
                                keys.append(key)
                                forwards += n
                        if fam.distances or fam.feature_loss:
                            xt = min(512, split_sizes(data)[0])
                            forwards += 2 * xt * (int(fam.distances) + int(fam.feature_loss))
                        unit = {"unit": "paper2-eval", "target": tgt.key(), "source": src.key(),
                                "attack": atk, "n": fam.n_test, "distances": fam.distances,
                                "feature_loss": fam.feature_loss, "seed": seed,
                                **({"eps_sweep": sweep} if sweep else {}),
                                **({"suite": suite} if suite else {})}
                        key = canonical_hash(unit)
                        exp.evals[key] = EvalCost(key, arch, data.size, forwards * FORWARD_SHARE,
                                                  tuple(keys), view.has_eval(key))


# --------------------------------------------------------------------------- the plan
def experiment_cost(name: str, *, scale: str = "offline", seeds: int | None = None,
                    first_seed: int = 0, store: str | os.PathLike | None = None,
                    precision: str = "fp32") -> ExperimentCost:
    """The cost of ``reproduce(name, scale=..., seeds=..., first_seed=..., precision=...)`` with
    ``store`` (a bf16 run's models have other keys than an fp32 run's)."""
    exp, n_seeds = checked_request(name, scale, seeds, first_seed)
    plan = resolved_plan(exp, scale, n_seeds, first_seed, precision)
    view = _StoreView(_store_root(store))
    out = ExperimentCost(name, scale, list(range(first_seed, first_seed + n_seeds)))
    out.specs = trained_specs(exp.paper, plan)
    out.models = {k: model_cost(s, view.has_model(k)) for k, s in out.specs.items()}
    (_paper1_evals if exp.paper == "paper1" else _paper2_evals)(plan, out, view)
    return out


def plan_costs(name: str, **kwargs: Any) -> list[ExperimentCost]:
    """:func:`experiment_cost` of ``name``, or of every registered experiment for ``"all"``
    (in the order ``reproduce all`` runs them)."""
    names = list(EXPERIMENTS) if name == "all" else [name]
    return [experiment_cost(n, **kwargs) for n in names]


def merged(costs: list[ExperimentCost]) -> ExperimentCost:
    """One cost of several experiments run in a row: shared models and units counted once."""
    out = ExperimentCost("all", costs[0].scale if costs else "offline",
                         costs[0].seeds if costs else [])
    for c in costs:
        out.specs.update(c.specs)
        out.models.update(c.models)
        out.evals.update(c.evals)
        out.crafts.update(c.crafts)
    return out


# ------------------------------------------------------------------------------ rates
def profile_rates(profile: str) -> Rates:
    """images/s from the named device profile: the entry measured at the nearest image side,
    scaled by pixel count to other sizes; None for an architecture the profile did not measure."""
    if profile not in PROFILES:
        raise ConfigError(unknown_name("profile", profile, [*PROFILES, HERE]))
    table = PROFILES[profile]

    def rate(arch: str, size: int) -> float | None:
        if arch not in table:
            return None
        ips, px = min(table[arch], key=lambda e: abs(math.log(e[1] / size)))
        return ips * (px / size) ** 2

    return rate


def _probe_one(arch: str, size: int, batch: int, dev: Any) -> float | None:
    """images/s of timed SGD steps (after one warm-up step) of ``arch`` at ``size`` px."""
    import torch
    import torch.nn.functional as F

    from ..models import create_model
    from ..training.loop import uses_channels_last

    try:
        model = create_model(arch, 10).to(dev).train()
    except (ConfigError, ImportError) as err:
        log.warning("no probe for %s: %s", arch, err)
        return None
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.rand(batch, 3, size, size, device=dev)
    if uses_channels_last(model, dev, "fp32"):  # the layout fit() trains it in (fp32 probe)
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=dev)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    step()  # warm-up
    sync()
    steps, t0 = 0, time.perf_counter()
    while steps < 2 or (steps < 10 and time.perf_counter() - t0 < 0.5):
        step()
        steps += 1
    sync()
    rate = steps * batch / (time.perf_counter() - t0)
    log.info("probe %s at %d px, batch %d on %s: %.0f images/s", arch, size, batch, dev, rate)
    return rate


def probe_rates(pairs: Iterable[tuple[str, int, int]], device: str = "auto") -> Rates:
    """images/s of a few timed SGD steps of ``create_model(arch, 10)`` per (arch, size, batch)
    on ``device``. On a CPU the batch is cut (4 at ≥ 96 px, else 32) to keep each probe around a
    second or two; images/s then stands for the plan's batch too."""
    from ..utils import resolve_device

    dev = resolve_device(device)
    found: dict[tuple[str, int], float | None] = {}
    for arch, size, batch in sorted(set(pairs), key=lambda p: (p[0], p[1], -p[2])):
        if (arch, size) not in found:
            cut = min(batch, 4 if size >= 96 else 32) if dev.type == "cpu" else batch
            found[arch, size] = _probe_one(arch, size, cut, dev)
    return lambda arch, size: found.get((arch, size))


def rate_pairs(costs: list[ExperimentCost]) -> set[tuple[str, int, int]]:
    """(arch, image size, batch) of everything the plans train, craft or evaluate."""
    c = merged(costs)
    pairs = {(m.arch, m.size, m.batch_size) for m in c.models.values()}
    pairs |= {(x.arch, x.size, 64) for x in [*c.crafts.values(), *c.evals.values()]}
    return pairs


# --------------------------------------------------------------------------- estimate
@dataclass
class Estimate:
    """Seconds of one cost under some rates (an estimate, not a promise)."""

    train_s: float = 0.0
    craft_s: float = 0.0
    eval_s: float = 0.0
    wall_s: float = 0.0  # on ``gpus`` devices: training waves in parallel, evaluation serial
    gpus: int = 1
    unknown: set[str] = field(default_factory=set)  # architectures without a rate

    @property
    def total_s(self) -> float:
        """Device-seconds of everything (= wall on one device)."""
        return self.train_s + self.craft_s + self.eval_s


def _seconds(work: float, arch: str, size: int, rates: Rates, unknown: set[str]) -> float:
    r = rates(arch, size)
    if not r:
        unknown.add(arch)
        return 0.0
    return work / r


def estimate(costs: list[ExperimentCost], rates: Rates, gpus: int = 1) -> Estimate:
    """Seconds of running ``costs`` in a row (as ``reproduce all`` does): each experiment trains
    what the store and the earlier ones lack, in waves (parents first) on ``gpus`` devices
    (wall ≈ Σ waves max(longest unit, wave total / gpus)), then evaluates serially."""
    if gpus < 1:
        raise ConfigError(f"--gpus must be at least 1, got {gpus}")
    est = Estimate(gpus=gpus)
    trained: set[str] = set()
    computed: set[str] = set()  # evaluation units and crafted batches
    for c in costs:
        specs = [c.specs[m.key] for m in c.to_train() if m.key not in trained]
        for wave in waves(specs, lambda s, c=c: c.models[s.key()].in_store or s.key() in trained):
            times = [_seconds(c.models[s.key()].work, s.arch, s.data.size, rates, est.unknown)
                     for s in wave]
            est.train_s += sum(times)
            est.wall_s += max(max(times, default=0.0), sum(times) / gpus)
        trained.update(m.key for m in c.to_train())
        evals = [e for e in c.evals_to_run() if e.key not in computed]
        crafts = [c.crafts[k] for k in sorted({k for e in evals for k in e.crafts} - computed)]
        for x in crafts:
            if not x.in_store:
                est.craft_s += _seconds(x.work, x.arch, x.size, rates, est.unknown)
        for e in evals:
            est.eval_s += _seconds(e.work, e.arch, e.size, rates, est.unknown)
        computed.update([e.key for e in evals] + [x.key for x in crafts])
    est.wall_s += est.craft_s + est.eval_s
    return est


# ----------------------------------------------------------------------------- report
def _duration(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _row(name: str, c: ExperimentCost, est: Estimate) -> list[str]:
    train = c.to_train()
    capped = any(m.capped for m in train)
    iters = sum(m.iterations * m.trials for m in train)
    images = sum(m.images for m in train)
    crafted = sum(x.images for x in c.crafts_to_run() if x.passes > 0)  # noise is drawn
    flag = "≤ " if capped else ""
    return [name, f"{len(train)} / {len(c.models) - len(train)}", f"{flag}{iters:,}",
            f"{flag}{images:,}", f"{len(c.evals_to_run())} / {len(c.evals)}", f"{crafted:,}",
            f"{flag}{_duration(est.total_s)}" + ("*" if est.unknown else "")]


def describe(costs: list[ExperimentCost], rates: Rates, source: str, *, gpus: int = 1,
             gpu_hours: bool = False) -> str:
    """The plan as a table, one row per experiment and (for several) a deduplicated total."""
    head = ["experiment", "models train / stored", "iterations", "images", "eval units",
            "crafted images", "est. time"]
    rows = [_row(c.name, c, estimate([c], rates)) for c in costs]
    total = estimate(costs, rates, gpus)
    if len(costs) > 1:
        rows.append(_row("total (shared work once)", merged(costs), total))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(v.ljust(w) if i == 0 else v.rjust(w)  # noqa: E731
                              for i, (v, w) in enumerate(zip(r, widths, strict=True)))
    lines = [fmt(head), fmt(["-" * w for w in widths]), *map(fmt, rows), ""]
    scale = costs[0].scale if costs else "offline"
    seeds = {tuple(c.seeds) for c in costs}
    seed_text = (f"seeds {list(next(iter(seeds)))}" if len(seeds) == 1
                 else "each experiment's default seeds")
    lines.append(f"Scale {scale}, {seed_text}. Rates: {source}.")
    lines.append("Estimate, not a promise: training images/s times the work (a forward-only image "
                 "= 1/3 step, an attack gradient step = 1 step); data loading, start-up and reports "
                 "are not counted.")
    if any(m.capped for c in costs for m in c.to_train()):
        lines.append("≤: epochs with early stopping; the iteration count is the cap, real runs "
                     "usually stop sooner.")
    if total.unknown:
        lines.append(f"*: no rate for {', '.join(sorted(total.unknown))} in this profile; their "
                     "work is not in the time.")
    if gpu_hours or gpus > 1:
        cap = "≤ " if any(m.capped for c in costs for m in c.to_train()) else ""
        lines.append(f"Device time: {cap}{total.total_s / 3600:.2f} GPU-hours; wall on {gpus} "
                     f"device{'s' if gpus > 1 else ''}: {cap or '≈ '}{_duration(total.wall_s)} "
                     "(training in "
                     "waves of independent models, parents first; evaluation serial).")
    return "\n".join(lines)


def cost_plan_text(name: str, *, scale: str = "offline", seeds: int | None = None,
                   first_seed: int = 0, store: str | os.PathLike | None = None,
                   profile: str | None = None, gpus: int = 1, device: str = "auto",
                   precision: str | None = None) -> str:
    """What ``transferguard reproduce NAME --plan`` prints. ``profile``: a name of
    :data:`PROFILES`, or ``"here"`` to probe this machine; default: the probe at offline scale,
    ``h200`` (``h200-bf16`` for a bf16 run) at paper scale. ``precision``: as ``reproduce``
    resolves it (None / "auto": :func:`~transferguard.training.default_precision`)."""
    if gpus < 1:
        raise ConfigError(f"--gpus must be at least 1, got {gpus}")
    if profile is not None and profile != HERE and profile not in PROFILES:
        raise ConfigError(unknown_name("profile", profile, [*PROFILES, HERE]))
    if name != "all":
        get_experiment(name)
    from ..training.config import resolve_precision
    from ..utils import resolve_device

    precision = resolve_precision(precision, resolve_device(device), scale)  # as reproduce does
    profile = profile or (("h200-bf16" if precision == "bf16" else "h200") if scale != "offline"
                          else HERE)
    costs = plan_costs(name, scale=scale, seeds=seeds, first_seed=first_seed, store=store,
                       precision=precision)
    if profile == HERE:
        from ..utils import resolve_device

        dev = resolve_device(device)
        rates = probe_rates(rate_pairs(costs), str(dev))
        source = f"a timed probe of each architecture on this machine ({dev})"
    else:
        rates = profile_rates(profile)
        source = (f"device profile {profile} (training images/s per architecture, measured "
                  "there with the project's code)")
    seen = sorted({(a, px) for a, px, _ in rate_pairs(costs)})
    source += ": " + ", ".join(f"{a} at {px} px {r:,.0f} img/s" if (r := rates(a, px))
                               else f"{a} at {px} px unknown" for a, px in seen)
    return describe(costs, rates, source, gpus=gpus, gpu_hours=scale != "offline")

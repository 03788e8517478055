"""``audit()``: how exposed is a fine-tuned model to attacks crafted on its public source model?

An audit reads as five steps: a checked request (:func:`_request`, every argument error before
any work), a context (:func:`_context`: models, data, audit images), and three row producers:

* :func:`_clean_rows` — clean accuracy, input-gradient norms and, when the architectures match,
  the weight and penultimate-feature distances to the source;
* :func:`_source_rows` — every attack of the registry's transfer suite
  (:func:`transferguard.attacks.transfer_suite`) crafted on the source alone, at every ε: the
  noise control, FGSM/PGD/MI-DI-TI-FGSM with the true labels (only when the source's classes are
  the data's), and the label-free feature-level attacks (best-neuron penultimate feature, layer,
  FIA, ILA), each under the :class:`attacks.AttackBudget` chosen (``fast`` or ``thorough``);
* :func:`_white_box_rows` — FGSM and PGD crafted on each audited model itself (the reference of
  the transferability ``gamma = (a_black − a_white) / a_white``).

Per attack and ε: ``adv_acc``, ``adv_acc_cond``, ``asr`` and the counts ``n_correct`` /
``n_fooled`` behind the verdict's intervals. Crafted examples are crafted once and evaluated on
every audited model (the target and an optional reference trained here); FGSM is crafted once
for all ε. Result rows go to ``results.csv`` (rewritten atomically after every block of work),
then ``report.md``/``.html`` with figures and a grid of example images.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from .. import attacks
from .._eps import eps_list
from .._names import unknown_name
from .._progress import progress_bar
from ..errors import CheckpointError, ConfigError
from ..evaluation import (
    attack_metrics,
    feature_distance,
    input_gradient_norms,
    transferability_gamma,
    weight_distance,
)
from ..models import TGModel, arch_info, create_model, load_checkpoint, save_checkpoint
from ..results import CLEAN, NOISE, RESULT_COLUMNS, Metric, Threat, attack_name, write_results
from ..utils import resolve_device
from .loading import (
    AuditData,
    LoadedModel,
    audit_data_from_arrays,
    load_audit_data,
    load_model,
    set_normalization,
)
from .report import VERDICT_EPS, Examples

log = logging.getLogger(__name__)

DEFAULT_EPS: tuple[float, ...] = (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
#: Columns of the results table: the experiments' columns plus the audited model.
AUDIT_COLUMNS = [*RESULT_COLUMNS, "model"]
#: Transfer attacks with a white-box counterpart of the same kind (for γ).
WHITE_OF = {attack_name(a, Threat.TRANSFER): attack_name(a, Threat.WHITE) for a in ("fgsm", "pgd")}
#: Share of each class kept for the audit when a folder/.npz must also train a reference model.
AUDIT_FRACTION = 0.3


class _Results:
    """Result rows, written to ``results.csv`` atomically after every block (never lost)."""

    def __init__(self, out: Path | None, base: dict[str, Any]) -> None:
        self.out = out
        self.base = base
        self.rows: list[dict[str, Any]] = []

    def add(self, method: str, model: str, arch: str, attack: str, eps: float, metric: str,
            value: float) -> None:
        self.rows.append({**self.base, "method": method, "arch": arch, "attack": str(attack),
                          "eps": float(eps), "metric": str(metric), "value": float(value),
                          "model": model})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=AUDIT_COLUMNS)

    def flush(self) -> None:
        if self.out is not None:
            write_results(self.frame(), self.out / "results.csv")


class _Audited:
    """One model under audit: its label in the table and its clean predictions."""

    def __init__(self, label: str, spec: str, model: TGModel) -> None:
        self.label = label
        self.spec = spec
        self.model = model
        self.clean: torch.Tensor | None = None


def _positive(name: str, value: int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _backbone_shapes(model: TGModel) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("head.")}


def _distance_blocker(source: TGModel, model: TGModel) -> str | None:
    """Why weight/feature distances cannot be computed (``None`` when they can)."""
    if source.arch != model.arch:
        return f"the source is {source.arch!r} and the target {model.arch!r}"
    if _backbone_shapes(source) != _backbone_shapes(model):
        return "the source's and the target's backbone layers have different shapes"
    return None


def _input_size(target: LoadedModel, input_size: int | None) -> tuple[int, str]:
    if input_size is not None:
        _positive("input_size", input_size)
        if input_size < 8:
            raise ConfigError(f"input_size must be >= 8, got {input_size}")
        return int(input_size), "given"
    if target.trained_size:
        return target.trained_size, "recorded in the target checkpoint"
    size = getattr(target.model, "input_size", None) or arch_info(target.arch)["input_size"]
    return int(size), f"the {target.arch} default"


def _probe(lm: LoadedModel, split: Any, size: int, device: torch.device) -> None:
    """Run two images through the model: a wrong input size fails here with a clear message."""
    try:
        attacks.predict(lm.model, split.images()[:2].to(device))
    except RuntimeError as exc:
        raise ConfigError(f"the {lm.arch} model {lm.spec!r} cannot classify {size}×{size} images "
                          f"({str(exc).splitlines()[0][:120]}); set --input-size to the size it "
                          "was trained at") from None


def _rebuild_like(source: TGModel, num_classes: int) -> TGModel:
    cfg = dict(source.config())
    arch = cfg.pop("arch")
    cfg.pop("num_classes", None)
    cfg.pop("spatial_dropout", None)
    model = create_model(arch, num_classes, pretrained=None, **cfg)
    return model


def _train_reference(method_name: str, source: TGModel, data: AuditData, *, iterations: int,
                     batch_size: int, seed: int, device: torch.device, progress: bool,
                     out: Path | None, fingerprint: dict[str, Any],
                     normalization: tuple[list[float], list[float]] | None = None
                     ) -> tuple[TGModel, str]:
    """Train (or reuse from ``out``) a reference model with ``method_name``, teacher = source."""
    from ..methods import create_method
    from ..training import train_one

    method = create_method(method_name)
    tag = method_name.replace("/", "_")
    stem = out / f"reference-{tag}" if out is not None else None
    if stem is not None and stem.with_suffix(".json").is_file():
        try:
            model, meta = load_checkpoint(stem, device=device)
            if meta.get("audit_reference") == fingerprint:
                log.info("reusing the reference model %s.safetensors", stem)
                return model.eval(), str(stem) + ".safetensors"
        except CheckpointError as exc:
            log.warning("ignoring unreadable reference checkpoint %s: %s", stem, exc)
    assert data.train is not None
    settings = {"iterations": iterations, "batch_size": min(batch_size, 64, len(data.train)),
                "lr": 0.01, "weight_decay": 5e-4, "momentum": 0.9, "schedule": "cosine",
                "eval_every": max(1, iterations // 5), "device": str(device),
                "progress": progress, "desc": f"reference {method.name}",
                "checkpoint_path": (out / f".reference-{tag}.partial") if out is not None else None}

    def normalize(model: TGModel) -> None:  # on the prepared model, before training
        if normalization is not None:
            set_normalization(model, *normalization)

    t0 = time.perf_counter()
    result = train_one(lambda n: _rebuild_like(source, n), method, data.train, data.val,
                       settings, seed=seed, num_classes=data.num_classes, parent=source,
                       on_prepared=normalize)
    log.info("trained the %s reference in %.1f s (val acc %s)", method.name,
             time.perf_counter() - t0, result.best_val_acc)
    if stem is not None:
        save_checkpoint(result.model, stem, {"audit_reference": fingerprint,
                                             "classes": data.classes, "method": method.name})
        (out / f".reference-{tag}.partial").unlink(missing_ok=True)
    return result.model.to(device).eval(), (str(stem) + ".safetensors") if stem else method.name


def _attack_rows(res: _Results, audited: Sequence[_Audited], arch: str, attack: str, eps: float,
                 x_adv_for: Callable[[_Audited], torch.Tensor], y: torch.Tensor,
                 batch_size: int) -> None:
    for a in audited:
        assert a.clean is not None
        adv = attacks.predict(a.model, x_adv_for(a), batch_size=batch_size)
        for metric, value in attack_metrics(a.clean, adv, y).items():
            res.add(a.label, a.spec, arch, attack, eps, metric, value)
        correct = a.clean == y  # the counts behind the ASR, for its interval (k of n)
        res.add(a.label, a.spec, arch, attack, eps, Metric.N_CORRECT, int(correct.sum()))
        res.add(a.label, a.spec, arch, attack, eps, Metric.N_FOOLED,
                int((correct & (adv != y)).sum()))


def _gamma_rows(res: _Results) -> None:
    df = res.frame()
    cond = df[df.metric == Metric.ADV_ACC_COND]
    for (method, model, arch), g in cond.groupby(["method", "model", "arch"]):
        for black, white in WHITE_OF.items():
            b = g[g.attack == black].set_index("eps")["value"]
            w = g[g.attack == white].set_index("eps")["value"]
            for eps in b.index.intersection(w.index):
                res.add(method, model, arch, black, eps, Metric.GAMMA,
                        transferability_gamma(float(b[eps]), float(w[eps])))


def _model_arg(model: str | nn.Module, role: str, device: torch.device) -> LoadedModel:
    """A model spec loaded with the shared loader, or a model given in memory."""
    if isinstance(model, str | Path):
        return load_model(str(model), role=role, require_weights=role == "target", device=device)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{role} must be a model spec (ARCH:WEIGHTS or a path) or an "
                          f"nn.Module, got {type(model).__name__}")
    if role == "source" and not isinstance(model, TGModel):
        raise ConfigError("an in-memory source must be a transferguard model (TGModel, e.g. from "
                          "transferguard.models.create_model or load_model): the feature-level "
                          "attacks need its stages")
    model = model.to(device).eval()
    if not isinstance(getattr(model, "num_classes", None), int):
        with torch.no_grad():  # infer the class count of a plain classifier from one forward
            probe = torch.zeros(1, 3, 32, 32, device=device)
            try:
                model.num_classes = int(model(probe).shape[-1])  # type: ignore[assignment]
            except RuntimeError:
                raise ConfigError(f"the in-memory {role} model has no num_classes attribute and "
                                  "does not classify 32×32 images; set model.num_classes") from None
    arch = str(getattr(model, "arch", type(model).__name__))
    return LoadedModel(model, f"<in-memory {role}: {type(model).__name__}>", arch, None)


def _warnings(tgt: LoadedModel, src: LoadedModel, dat: AuditData) -> list[str]:
    """What a reader should know before trusting the verdict (also logged as warnings)."""
    out = []
    parent = tgt.sidecar.get("parent")
    if isinstance(parent, str) and parent and src.weights:
        names = {Path(parent).name, Path(parent).stem}
        if Path(src.weights).name not in names and Path(src.weights).stem not in names \
                and parent != src.spec:
            out.append(f"**Warning**: the target's checkpoint records its parent as `{parent}`, "
                       f"not the audited source `{src.spec}`; the verdict is about this source.")
    if src.model.num_classes != dat.num_classes:
        out.append(f"**Warning**: the source has {src.model.num_classes} classes and the data "
                   f"{dat.num_classes}: only the label-free (feature-level) attacks run on it.")
    for w in out:
        log.warning(w.replace("**", ""))
    return out


def _accuracy_warning(tgt: LoadedModel, measured: float) -> str | None:
    """A warning when the target scores far below the accuracy its checkpoint recorded."""
    metrics = tgt.sidecar.get("metrics") if isinstance(tgt.sidecar.get("metrics"), dict) else {}
    recorded = metrics.get("test_acc", tgt.sidecar.get("best_val_acc"))
    if isinstance(recorded, int | float) and measured < float(recorded) - 0.2:
        return (f"**Warning**: the target's clean accuracy here ({100 * measured:.1f} %) is far "
                f"below the {100 * float(recorded):.1f} % its checkpoint records: check the data, "
                "its class order, the input size and the normalisation before reading the "
                "verdict.")
    return None


#: Clean/adversarial pairs shown in the report's example grid, picked from the first
#: ``EXAMPLE_POOL`` audit images (fooled ones first), whose adversarial versions are kept.
N_EXAMPLES = 6
EXAMPLE_POOL = 32


@dataclass(frozen=True)
class _Request:
    """The checked arguments of one audit (every error raised before any model is loaded)."""

    eps: list[float]
    verdict_eps: float
    budget: attacks.AttackBudget
    out: Path | None
    device: torch.device
    batch_size: int
    seed: int
    progress: bool
    limit: int | None
    input_size: int | None
    normalization: tuple[list[float], list[float]] | None
    train_reference: str | None
    reference_iterations: int


def _request(eps: Sequence[float] | str, verdict_eps: float, budget: str, *, steps: int | None,
             feature_steps: int | None, candidates: int | None, out: str | Path | None,
             overwrite: bool, device: str, batch_size: int, seed: int, progress: bool,
             limit: int | None, input_size: int | None,
             normalization: tuple[Sequence[float], Sequence[float]] | None,
             train_reference: str | None, reference_iterations: int) -> _Request:
    if budget not in attacks.BUDGETS:
        raise ConfigError(unknown_name("budget", budget, attacks.BUDGETS))
    (v_eps,) = eps_list([verdict_eps])
    for name, value in (("reference_iterations", reference_iterations), ("pgd_steps", steps),
                        ("feature_steps", feature_steps), ("candidates", candidates),
                        ("batch_size", batch_size), ("limit", limit)):
        _positive(name, value, allow_none=name not in ("reference_iterations", "batch_size"))
    if train_reference is not None:
        from ..methods import create_method

        create_method(train_reference)  # unknown names fail here, before any work
    norm: tuple[list[float], list[float]] | None = None
    if normalization is not None:
        try:
            norm = ([float(v) for v in normalization[0]], [float(v) for v in normalization[1]])
        except (TypeError, ValueError, IndexError):
            raise ConfigError("normalization must be (mean, std), two sequences of numbers") from None
    dev = resolve_device(device)
    out_dir = Path(out).expanduser() if out is not None else None
    if out_dir is not None:
        if (out_dir / "results.csv").exists() and not overwrite:
            raise ConfigError(f"{out_dir} already holds audit results (results.csv); pass "
                              "overwrite=True (--overwrite) to replace them, or choose another out")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the output folder {out_dir}: {exc}") from None
    return _Request(sorted(set(eps_list(eps)) | {v_eps}), v_eps,
                    attacks.BUDGETS[budget].with_overrides(steps, feature_steps, candidates), out_dir, dev,
                    batch_size, seed, progress, limit, input_size, norm, train_reference,
                    reference_iterations)


@dataclass
class _Context:
    """What every row producer needs: the models, the audit images and where rows go."""

    req: _Request
    src: LoadedModel
    tgt: LoadedModel
    data: AuditData
    data_name: str
    x: torch.Tensor
    y: torch.Tensor
    res: _Results
    notes: list[str] = field(default_factory=list)
    audited: list[_Audited] = field(default_factory=list)
    examples: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def label_attacks(self) -> bool:
        """The source shares the data's labels, so the label-based transfer attacks apply."""
        return self.src.model.num_classes == self.data.num_classes

    def craft(self, fn: Callable[..., torch.Tensor], labels: torch.Tensor | None, desc: str
              ) -> torch.Tensor:
        return attacks.craft_in_batches(fn, self.x, labels, self.req.batch_size,
                                        self.req.progress, device=self.req.device, desc=desc)


def _load_data(req: _Request, tgt: LoadedModel, data: str | Path | tuple[Any, Any], size: int,
               data_root: str | None) -> tuple[AuditData, str]:
    """The audit data at ``size`` px, checked against the target's classes."""
    with_train = req.train_reference is not None
    if isinstance(data, str | Path):
        dat = load_audit_data(str(data), size=size, with_train=with_train,
                              audit_fraction=AUDIT_FRACTION, seed=req.seed, root=data_root)
        name = str(data)
    else:
        dat = audit_data_from_arrays(data, size=size, with_train=with_train,
                                     audit_fraction=AUDIT_FRACTION, seed=req.seed)
        name = f"in-memory arrays ({len(dat.audit) + len(dat.train or [])} images)"
    n_target = tgt.model.num_classes
    if dat.exact_classes and dat.num_classes != n_target:
        preview = ", ".join(dat.classes[:5]) + (", …" if dat.num_classes > 5 else "")
        raise ConfigError(f"the target model has {n_target} classes but the data has "
                          f"{dat.num_classes} ({preview}); audit it on data of its own task")
    if not dat.exact_classes:
        if dat.num_classes > n_target:
            raise ConfigError(f"the data's labels go up to {dat.num_classes - 1} but the target "
                              f"model has only {n_target} classes")
        dat.classes = dat.classes + [str(i) for i in range(dat.num_classes, n_target)]
    side_classes = tgt.sidecar.get("classes")
    if isinstance(side_classes, list) and [str(c) for c in side_classes] != dat.classes \
            and dat.exact_classes:
        log.warning("the target checkpoint's class names %s differ from the data's %s; "
                    "labels are matched by index", side_classes[:5], dat.classes[:5])
    return dat, name


def _context(req: _Request, source: str | nn.Module, target: str | nn.Module,
             data: str | Path | tuple[Any, Any], data_root: str | None) -> _Context:
    """Load the models and the data, check they fit together, and pick the audit images."""
    tgt = _model_arg(target, "target", req.device)
    src = _model_arg(source, "source", req.device)
    if req.normalization is not None:
        for lm in (tgt, src):
            set_normalization(lm.model, *req.normalization)
    size, size_why = _input_size(tgt, req.input_size)
    dat, data_name = _load_data(req, tgt, data, size, data_root)
    notes = [f"Images resized to {size}×{size} px ({size_why})."]
    notes += _warnings(tgt, src, dat)
    for lm in (tgt, src):
        _probe(lm, dat.audit, size, req.device)
    split = dat.audit
    subset = req.limit is not None and req.limit < len(split)
    if subset:
        perm = torch.randperm(len(split), generator=torch.Generator().manual_seed(req.seed))
        split = split.subset(torch.sort(perm[:req.limit]).values)
    x, y = split.images(), split.y
    notes.insert(0, f"Audit images: {len(y)} ({dat.note}"
                 + (f"; a seeded random subset of {req.limit}" if subset else "") + ").")
    b = req.budget
    notes.append(f"Attack budget `{b.name}`: {b.steps} iterations per iterative attack, "
                 f"feature attack {b.feature_steps} iterations over {b.candidates} candidate "
                 f"neurons, FIA importance over {b.fia_ensemble} masked copies.")
    res = _Results(req.out, {"experiment": "audit", "task": dat.name, "seed": req.seed})
    ctx = _Context(req, src, tgt, dat, data_name, x, y, res, notes)
    if not ctx.label_attacks:
        notes.append(f"The source model has {src.model.num_classes} classes and the data "
                     f"{dat.num_classes}: the label-based transfer attacks (FGSM, PGD, "
                     "MI-DI-TI-FGSM with labels crafted on the source) were skipped; the "
                     "feature-level attacks need no labels and were run.")
    if attacks.feature_mode(src.model) == "pre":
        notes.append("Feature attack on the source's pre-activation penultimate features "
                     "(its post-activation features are capped).")
    res.add("target", tgt.spec, tgt.arch, CLEAN, 0.0, Metric.VERDICT_EPS, req.verdict_eps)
    ctx.audited.append(_Audited("target", tgt.spec, tgt.model))
    return ctx


def _add_reference(ctx: _Context) -> None:
    """Train (or reuse) the ``train_reference`` model and audit it beside the target."""
    req, src = ctx.req, ctx.src
    assert req.train_reference is not None
    w = Path(src.weights) if src.weights else None
    norm = req.normalization
    fingerprint = {"source": src.spec, "data": ctx.data_name, "size": int(ctx.x.shape[-1]),
                   "seed": req.seed, "method": req.train_reference,
                   "iterations": req.reference_iterations,
                   "n_train": len(ctx.data.train) if ctx.data.train is not None else 0,
                   "source_file": [w.stat().st_size, w.stat().st_mtime_ns] if w else None,
                   "normalization": [list(v) for v in norm] if norm else None}
    t0 = time.perf_counter()
    model, spec = _train_reference(
        req.train_reference, src.model, ctx.data, iterations=req.reference_iterations,
        batch_size=req.batch_size, seed=req.seed, device=req.device, progress=req.progress,
        out=req.out, fingerprint=fingerprint, normalization=norm)
    ctx.notes.append(f"Reference `{req.train_reference}`: trained here for "
                     f"{req.reference_iterations} iterations from the source "
                     f"({time.perf_counter() - t0:.0f} s).")
    ctx.audited.append(_Audited(f"reference:{req.train_reference}", spec, model))


def _clean_rows(ctx: _Context) -> None:
    """Clean accuracy, input-gradient norms and distances to the source of every audited model."""
    res, x, y, bs, arch = ctx.res, ctx.x, ctx.y, ctx.req.batch_size, ctx.tgt.arch
    if ctx.label_attacks:
        src_pred = attacks.predict(ctx.src.model, x, batch_size=bs)
        res.add("source", ctx.src.spec, ctx.src.arch, CLEAN, 0.0, Metric.CLEAN_ACC,
                float((src_pred == y).float().mean()))
    for a in ctx.audited:
        a.clean = attacks.predict(a.model, x, batch_size=bs)
        acc = float((a.clean == y).float().mean())
        res.add(a.label, a.spec, arch, CLEAN, 0.0, Metric.CLEAN_ACC, acc)
        res.add(a.label, a.spec, arch, CLEAN, 0.0, Metric.N_IMAGES, len(y))
        if a.label == "target":
            warn = _accuracy_warning(ctx.tgt, acc)
            if warn:
                log.warning(warn.replace("**", ""))
                ctx.notes.append(warn)
        norms = input_gradient_norms(a.model, x, y, batch_size=bs)
        for metric, v in ((Metric.GRAD_NORM_MEAN, norms.mean()),
                          (Metric.GRAD_NORM_MEDIAN, norms.median()),
                          (Metric.GRAD_NORM_P90, torch.quantile(norms.double(), 0.9))):
            res.add(a.label, a.spec, arch, CLEAN, 0.0, metric, float(v))
        why = _distance_blocker(ctx.src.model, a.model)
        if why is None:
            res.add(a.label, a.spec, arch, CLEAN, 0.0, Metric.WEIGHT_DISTANCE,
                    weight_distance(ctx.src.model, a.model))
            res.add(a.label, a.spec, arch, CLEAN, 0.0, Metric.FEATURE_DISTANCE,
                    feature_distance(ctx.src.model, a.model, x, batch_size=bs))
        elif a.label == "target":
            ctx.notes.append(f"Weight and feature distances to the source not computed: {why}.")
    res.flush()


def _generator(seed: int, name: str, eps_index: int) -> torch.Generator:
    """An independent stream per (attack, ε): adding an attack leaves the others' draws alone."""
    return torch.Generator().manual_seed(seed * 7919 + eps_index * 104_729
                                         + zlib.crc32(name.encode()) % 100_003)


def _source_rows(ctx: _Context) -> None:
    """Every suite attack crafted on the source, at every ε, evaluated on every audited model.

    The registry's transfer suite decides what runs (label-based entries only when the source
    shares the data's labels); FGSM is crafted once for all ε (one gradient per batch).
    """
    req, src, y = ctx.req, ctx.src.model, ctx.y
    suite = attacks.transfer_suite(ctx.label_attacks)
    ctx.notes.append("Transfer suite crafted on the source: "
                     + ", ".join(f"`{e.name}` ({e.summary})" for e in suite) + ".")
    fgsm = _fgsm_sweep(src, ctx.x, y, req.eps, req.batch_size, req.device) \
        if any(e.name == "fgsm" for e in suite) else {}
    for k, e in enumerate(progress_bar(req.eps, desc="source attacks ε", disable=not req.progress,
                                       leave=False)):
        for entry in suite:
            name = NOISE if entry.control else attack_name(entry.name, Threat.TRANSFER)
            if entry.name == "fgsm":
                adv = fgsm[e]
            else:
                opts = {**attacks.suite_options(entry, req.budget, src), "eps": e,
                        "generator": _generator(req.seed, entry.name, k)}
                adv = ctx.craft(lambda xb, yb=None, f=entry, o=opts: f(src, xb, yb, **o),
                                y if entry.needs_labels else None, f"{entry.name} ε={e:.4f}")
            if abs(e - req.verdict_eps) < 1e-12:
                ctx.examples[name] = adv[:EXAMPLE_POOL].clone()
            _attack_rows(ctx.res, ctx.audited, ctx.tgt.arch, name, e, lambda _a, v=adv: v, y,
                         req.batch_size)
        ctx.res.flush()


def _white_box_rows(ctx: _Context) -> None:
    """FGSM and PGD crafted on each audited model itself: the reference for γ."""
    req, y = ctx.req, ctx.y
    fgsm_white, pgd_white = attack_name("fgsm", Threat.WHITE), attack_name("pgd", Threat.WHITE)
    for a in ctx.audited:
        sweep = _fgsm_sweep(a.model, ctx.x, y, req.eps, req.batch_size, req.device)
        for k, e in enumerate(req.eps):
            _attack_rows(ctx.res, [a], ctx.tgt.arch, fgsm_white, e, lambda _a, v=sweep[e]: v, y,
                         req.batch_size)
            gen = _generator(req.seed, pgd_white, k)
            adv = ctx.craft(lambda xb, yb, m=a.model, e=e, g=gen: attacks.pgd(
                m, xb, yb, e, steps=req.budget.steps, generator=g), y, f"PGD white-box ε={e:.4f}")
            _attack_rows(ctx.res, [a], ctx.tgt.arch, pgd_white, e, lambda _a, v=adv: v, y,
                         req.batch_size)
        ctx.res.flush()


def audit(source: str | nn.Module, target: str | nn.Module,
          data: str | Path | tuple[Any, Any], *, eps: Sequence[float] | str = DEFAULT_EPS,
          out: str | Path | None = None, budget: str = "fast", input_size: int | None = None,
          normalization: tuple[Sequence[float], Sequence[float]] | None = None,
          limit: int | None = None, train_reference: str | None = None,
          reference_iterations: int = 1000, pgd_steps: int | None = None,
          feature_steps: int | None = None, candidates: int | None = None,
          device: str = "auto", progress: bool = True, batch_size: int = 128,
          data_root: str | None = None, seed: int = 0, overwrite: bool = False,
          verdict_eps: float = VERDICT_EPS) -> pd.DataFrame:
    """Audit ``target`` against attacks crafted on ``source`` (model specs or ``nn.Module``s).

    ``data`` is an image folder, an ``.npz`` or a registered domain (see
    :mod:`transferguard.auditing.loading`). ``eps`` are L∞ budgets in pixel units (a list, or a
    string such as ``"1/255,8/255"``). ``budget`` (:data:`attacks.BUDGETS`: ``"fast"`` or
    ``"thorough"``) sets the attacks' iterations and candidate neurons; ``pgd_steps`` (every
    iterative attack), ``feature_steps`` and ``candidates`` override it. ``input_size`` defaults
    to the size recorded in the target checkpoint, else the architecture's (32 for dtn/wrn, 224
    for ImageNet models). ``normalization=(mean, std)`` replaces the input normalisation of both
    models (use it when foreign weights were trained with other statistics). ``limit`` audits a
    seeded random subset of that many images. ``train_reference`` (``"retrain"``,
    ``"renofeation"`` or any method name) trains that model here on the same data, teacher =
    source, ``reference_iterations`` SGD steps, and audits it alongside (method
    ``reference:<name>``). With ``out`` the folder receives ``results.csv``, ``report.md``,
    ``report.html``, figures and reference checkpoints; a folder that already holds a
    ``results.csv`` is refused unless ``overwrite`` (a reference model trained there before with
    the same settings is then reused).

    ``verdict_eps`` (pixel units, default 8/255) is where the verdict is read; it is audited even
    when ``eps`` does not list it. In memory: ``source`` and ``target`` may be ``nn.Module``s
    (transferguard models, e.g. from :func:`transferguard.models.load_model`; the target may be
    any classifier on [0, 1] images) and ``data`` an ``(images, labels)`` pair of tensors or
    arrays (N×C×H×W or N×H×W×C, uint8 0..255 or float in [0, 1]).

    Returns the results table (columns :data:`AUDIT_COLUMNS`); bad input raises the
    :mod:`transferguard.errors` classes.
    """
    t_start = time.perf_counter()
    req = _request(eps, verdict_eps, budget, steps=pgd_steps, feature_steps=feature_steps,
                   candidates=candidates, out=out, overwrite=overwrite, device=device,
                   batch_size=batch_size, seed=seed, progress=progress, limit=limit,
                   input_size=input_size, normalization=normalization,
                   train_reference=train_reference, reference_iterations=reference_iterations)
    ctx = _context(req, source, target, data, data_root)
    if req.train_reference is not None:
        _add_reference(ctx)
    _clean_rows(ctx)
    _source_rows(ctx)
    _white_box_rows(ctx)
    _gamma_rows(ctx.res)
    ctx.res.flush()
    return _finish(ctx, target, time.perf_counter() - t_start)


def _finish(ctx: _Context, target: object, seconds: float) -> pd.DataFrame:
    """Log, write the report (with the example grid) and return the table with its notes."""
    df = ctx.res.frame()
    log.info("audit of %s finished in %.1f s (%d images, %d ε)", target, seconds, len(ctx.y),
             len(ctx.req.eps))
    if ctx.req.out is not None:
        from .report import write_audit_report

        write_audit_report(df, ctx.req.out, source=ctx.src.spec, target=ctx.tgt.spec,
                           data=ctx.data_name, notes=ctx.notes, label_attacks=ctx.label_attacks,
                           seconds=seconds, examples=_examples(ctx, df))
    df.attrs.update(notes=ctx.notes, seconds=seconds, label_attacks=ctx.label_attacks)
    return df


def _examples(ctx: _Context, df: pd.DataFrame) -> Examples | None:
    """Clean and adversarial images of the strongest source attack at the verdict ε, with the
    target's predictions (for the report's grid)."""
    from .report import exposure_of

    ex = exposure_of(df, "target", ctx.req.verdict_eps)
    if not ex.attack or ex.attack not in ctx.examples:
        return None
    pool = ctx.examples[ex.attack]
    clean, y, model = ctx.x[:len(pool)], ctx.y[:len(pool)], ctx.tgt.model
    clean_pred = attacks.predict(model, clean, batch_size=len(pool))
    adv_pred = attacks.predict(model, pool, batch_size=len(pool))
    fooled = (clean_pred == y) & (adv_pred != y)
    order = torch.cat([torch.nonzero(fooled).flatten(), torch.nonzero(~fooled).flatten()])
    pick = torch.sort(order[:N_EXAMPLES]).values  # fooled images first, shown in data order
    return Examples(ex.attack, ctx.req.verdict_eps, clean[pick], pool[pick], y[pick],
                    clean_pred[pick], adv_pred[pick], list(ctx.data.classes))


def _fgsm_sweep(model: TGModel, x: torch.Tensor, y: torch.Tensor, eps_list: list[float],
                batch_size: int, device: torch.device) -> dict[float, torch.Tensor]:
    """FGSM at every ε from one gradient per batch (crafted on ``model``, results on ``x``'s
    device)."""
    return attacks.craft_in_batches(lambda xb, yb: attacks.fgsm_sweep(model, xb, yb, eps_list),
                                    x, y, batch_size, False, device=device)

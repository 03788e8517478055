"""``audit()``: how exposed is a fine-tuned model to attacks crafted on its public source model?

Everything is measured on the **target** (and on optional reference models trained here) with the
shared attacks and metrics of :mod:`transferguard.attacks` and :mod:`transferguard.evaluation`:

* clean accuracy; white-box FGSM and PGD (crafted on the audited model itself);
* black-box transfer FGSM and PGD crafted on the source with the true labels — only when the
  source's class count equals the data's (otherwise its logits mean other classes);
* the penultimate-feature attack crafted on the source (no labels, ``neuron="best"``; for models
  with ``forward_features_preact`` such as EfficientNet-Lite the uncapped pre-activation features);
* the uniform-noise control at every ε;
* per ε: accuracy under attack (``adv_acc`` over all images, ``adv_acc_cond`` over the images
  correct on clean data), attack success rate ``asr`` and, for transfer attacks, the
  transferability ``gamma = (a_black − a_white) / a_white``;
* input-gradient norms (mean, median, 90th percentile) and, when the architectures match, the
  weight and penultimate-feature distances to the source.

Crafted transfer examples are crafted once and evaluated on every audited model. Result rows go to
``results.csv`` (rewritten atomically after every block of work), then ``report.md``/``.html``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from .. import attacks
from .._io import atomic_write
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
from ..utils import resolve_device, seed_everything
from .loading import (
    AuditData,
    LoadedModel,
    audit_data_from_arrays,
    load_audit_data,
    load_model,
    set_normalization,
)
from .report import VERDICT_EPS

log = logging.getLogger(__name__)

DEFAULT_EPS: tuple[float, ...] = (1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255)
#: Columns of the results table: the experiments' columns plus the audited model.
AUDIT_COLUMNS = ["experiment", "task", "method", "arch", "seed", "attack", "eps", "metric",
                 "value", "model"]
#: Attacks whose examples are crafted on the source model only (the black-box threat).
TRANSFER_ATTACKS = ("fgsm-transfer", "pgd-transfer", "feature-transfer")
WHITE_OF = {"fgsm-transfer": "fgsm-white", "pgd-transfer": "pgd-white"}
#: Suite entries the audit runs with its own settings (FGSM sweep, PGD, best-neuron feature).
CLASSIC_ATTACKS = ("noise", "fgsm", "pgd", "feature")
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
        self.rows.append({**self.base, "method": method, "arch": arch, "attack": attack,
                          "eps": float(eps), "metric": metric, "value": float(value),
                          "model": model})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=AUDIT_COLUMNS)

    def flush(self) -> None:
        if self.out is not None:
            df = self.frame()
            atomic_write(self.out / "results.csv", lambda tmp: df.to_csv(tmp, index=False))


class _Audited:
    """One model under audit: its label in the table and its clean predictions."""

    def __init__(self, label: str, spec: str, model: TGModel) -> None:
        self.label = label
        self.spec = spec
        self.model = model
        self.clean: torch.Tensor | None = None


def _check_eps(eps: Sequence[float] | str) -> list[float]:
    if isinstance(eps, str):
        from ..cli import parse_eps

        return parse_eps(eps)
    out = []
    for e in eps:
        try:
            v = float(e)
        except (TypeError, ValueError):
            raise ConfigError(f"cannot read ε {e!r}: give numbers in pixel units") from None
        if not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise ConfigError(f"ε {e} is outside [0, 1]: ε is in pixel units (images are in [0, 1])")
        out.append(v)
    if not out:
        raise ConfigError("no ε given")
    return sorted(set(out))


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
    from ..training import TrainConfig, fit

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
    seed_everything(seed)
    model = _rebuild_like(source, data.num_classes)
    model = method.prepare(model, source, data.num_classes)
    if normalization is not None:
        set_normalization(model, *normalization)
    cfg = TrainConfig(iterations=iterations, batch_size=min(batch_size, 64, len(data.train)),
                      lr=0.01, weight_decay=5e-4, momentum=0.9, schedule="cosine",
                      eval_every=max(1, iterations // 5), seed=seed, device=str(device),
                      progress=progress, desc=f"reference {method.name}",
                      checkpoint_path=(out / f".reference-{tag}.partial")
                      if out is not None else None)
    t0 = time.perf_counter()
    result = fit(model, method, data.train, data.val, cfg,
                 teacher=source if method.needs_teacher else None)
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
        res.add(a.label, a.spec, arch, attack, eps, "n_correct", int(correct.sum()))
        res.add(a.label, a.spec, arch, attack, eps, "n_fooled", int((correct & (adv != y)).sum()))


def _gamma_rows(res: _Results) -> None:
    df = res.frame()
    cond = df[df.metric == "adv_acc_cond"]
    for (method, model, arch), g in cond.groupby(["method", "model", "arch"]):
        for black, white in WHITE_OF.items():
            b = g[g.attack == black].set_index("eps")["value"]
            w = g[g.attack == white].set_index("eps")["value"]
            for eps in b.index.intersection(w.index):
                res.add(method, model, arch, black, eps, "gamma",
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


def audit(source: str | nn.Module, target: str | nn.Module,
          data: str | Path | tuple[Any, Any], *, eps: Sequence[float] | str = DEFAULT_EPS,
          out: str | Path | None = None, input_size: int | None = None,
          normalization: tuple[Sequence[float], Sequence[float]] | None = None,
          limit: int | None = None, train_reference: str | None = None,
          reference_iterations: int = 1000, pgd_steps: int = 10, feature_steps: int = 40,
          candidates: int = 8, device: str = "auto", progress: bool = True,
          batch_size: int = 128, data_root: str | None = None, seed: int = 0,
          overwrite: bool = False, verdict_eps: float = VERDICT_EPS) -> pd.DataFrame:
    """Audit ``target`` against attacks crafted on ``source`` (model specs or ``nn.Module``s).

    ``data`` is an image folder, an ``.npz`` or a registered domain (see
    :mod:`transferguard.auditing.loading`). ``eps`` are L∞ budgets in pixel units (a list, or a
    string such as ``"1/255,8/255"``). ``input_size`` defaults to the size recorded in the target
    checkpoint, else the architecture's (32 for dtn/wrn, 224 for ImageNet models).
    ``normalization=(mean, std)`` replaces the input normalisation of both models (use it when
    foreign weights were trained with other statistics). ``limit`` audits a seeded random subset
    of that many images. ``train_reference`` (``"retrain"``, ``"renofeation"`` or any method
    name) trains that model here on the same data, teacher = source, ``reference_iterations``
    SGD steps, and audits it alongside (method ``reference:<name>``). With ``out`` the folder
    receives ``results.csv``, ``report.md``, ``report.html``, figures and reference checkpoints;
    a folder that already holds a ``results.csv`` is refused unless ``overwrite`` (a reference
    model trained there before with the same settings is then reused).

    ``verdict_eps`` (pixel units, default 8/255) is where the verdict is read; it is audited even
    when ``eps`` does not list it. In memory: ``source`` and ``target`` may be ``nn.Module``s
    (transferguard models, e.g. from :func:`transferguard.models.load_model`; the target may be
    any classifier on [0, 1] images) and ``data`` an ``(images, labels)`` pair of tensors or
    arrays (N×C×H×W or N×H×W×C, uint8 0..255 or float in [0, 1]).

    Returns the results table (columns :data:`AUDIT_COLUMNS`); bad input raises the
    :mod:`transferguard.errors` classes.
    """
    t_start = time.perf_counter()
    verdict_eps = _check_eps([verdict_eps])[0]
    eps_list = sorted(set(_check_eps(eps)) | {verdict_eps})
    for name, value in (("reference_iterations", reference_iterations), ("pgd_steps", pgd_steps),
                        ("feature_steps", feature_steps), ("candidates", candidates),
                        ("batch_size", batch_size)):
        _positive(name, value)
    _positive("limit", limit, allow_none=True)
    if train_reference is not None:
        from ..methods import create_method

        create_method(train_reference)  # unknown names fail here, before any work
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

    tgt = _model_arg(target, "target", dev)
    src = _model_arg(source, "source", dev)
    norm: tuple[list[float], list[float]] | None = None
    if normalization is not None:
        try:
            norm = ([float(v) for v in normalization[0]], [float(v) for v in normalization[1]])
        except (TypeError, ValueError, IndexError):
            raise ConfigError("normalization must be (mean, std), two sequences of numbers") from None
        for lm in (tgt, src):
            set_normalization(lm.model, *norm)
    size, size_why = _input_size(tgt, input_size)
    notes: list[str] = [f"Images resized to {size}×{size} px ({size_why})."]

    if isinstance(data, str | Path):
        dat = load_audit_data(str(data), size=size, with_train=train_reference is not None,
                              audit_fraction=AUDIT_FRACTION, seed=seed, root=data_root)
    else:
        dat = audit_data_from_arrays(data, size=size, with_train=train_reference is not None,
                                     audit_fraction=AUDIT_FRACTION, seed=seed)
        data = f"in-memory arrays ({len(dat.audit) + len(dat.train or [])} images)"
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

    notes += _warnings(tgt, src, dat)
    for lm in (tgt, src):
        _probe(lm, dat.audit, size, dev)
    split = dat.audit
    if limit is not None and limit < len(split):
        perm = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:limit]
        split = split.subset(torch.sort(perm).values)
    x, y = split.images(), split.y
    notes.insert(0, f"Audit images: {len(y)} ({dat.note}"
                 + (f"; a seeded random subset of {limit}" if limit and limit < len(dat.audit)
                    else "") + ").")

    label_attacks = src.model.num_classes == dat.num_classes
    if not label_attacks:
        notes.append(f"The source model has {src.model.num_classes} classes and the data "
                     f"{dat.num_classes}: the label-based transfer attacks (FGSM/PGD with labels "
                     "crafted on the source) were skipped; the feature attack needs no labels "
                     "and was run.")
    feat_mode = "pre" if callable(getattr(src.model, "forward_features_preact", None)) else "post"
    if feat_mode == "pre":
        notes.append("Feature attack on the source's pre-activation penultimate features "
                     "(its post-activation features are capped).")

    base = {"experiment": "audit", "task": dat.name, "seed": seed}
    res = _Results(out_dir, base)
    res.add("target", tgt.spec, tgt.arch, "none", 0.0, "verdict_eps", verdict_eps)
    audited = [_Audited("target", tgt.spec, tgt.model)]

    if train_reference is not None:
        w = Path(src.weights) if src.weights else None
        fingerprint = {"source": src.spec, "data": data, "size": size, "seed": seed,
                       "method": train_reference, "iterations": reference_iterations,
                       "n_train": len(dat.train) if dat.train is not None else 0,
                       "source_file": [w.stat().st_size, w.stat().st_mtime_ns] if w else None,
                       "normalization": [list(v) for v in norm] if norm else None}
        t0 = time.perf_counter()
        ref_model, ref_spec = _train_reference(
            train_reference, src.model, dat, iterations=reference_iterations,
            batch_size=batch_size, seed=seed, device=dev, progress=progress, out=out_dir,
            fingerprint=fingerprint, normalization=norm)
        notes.append(f"Reference `{train_reference}`: trained here for {reference_iterations} "
                     f"iterations from the source ({time.perf_counter() - t0:.0f} s).")
        audited.append(_Audited(f"reference:{train_reference}", ref_spec, ref_model))

    arch = tgt.arch
    # ------------------------------------------------ clean accuracy, gradients, distances
    if label_attacks:
        src_pred = attacks.predict(src.model, x, batch_size=batch_size)
        res.add("source", src.spec, src.arch, "none", 0.0, "clean_acc",
                float((src_pred == y).float().mean()))
    for a in audited:
        a.clean = attacks.predict(a.model, x, batch_size=batch_size)
        res.add(a.label, a.spec, arch, "none", 0.0, "clean_acc", float((a.clean == y).float().mean()))
        res.add(a.label, a.spec, arch, "none", 0.0, "n_images", len(y))
        if a.label == "target":
            warn = _accuracy_warning(tgt, float((a.clean == y).float().mean()))
            if warn:
                log.warning(warn.replace("**", ""))
                notes.append(warn)
        norms = input_gradient_norms(a.model, x, y, batch_size=batch_size)
        for metric, v in (("grad_norm_mean", norms.mean()), ("grad_norm_median", norms.median()),
                          ("grad_norm_p90", torch.quantile(norms.double(), 0.9))):
            res.add(a.label, a.spec, arch, "none", 0.0, metric, float(v))
        why = _distance_blocker(src.model, a.model)
        if why is None:
            res.add(a.label, a.spec, arch, "none", 0.0, "weight_distance",
                    weight_distance(src.model, a.model))
            res.add(a.label, a.spec, arch, "none", 0.0, "feature_distance",
                    feature_distance(src.model, a.model, x, batch_size=batch_size))
        elif a.label == "target":
            notes.append(f"Weight and feature distances to the source not computed: {why}.")
    res.flush()

    # ------------------------------------------------ attacks crafted on the source
    def craft(fn: Callable[..., torch.Tensor], labels: torch.Tensor | None, desc: str
              ) -> torch.Tensor:
        return attacks.craft_in_batches(fn, x, labels, batch_size, progress, device=dev,
                                        desc=desc)

    # Attacks of the registry's transfer suite beyond the four written out here (noise, FGSM,
    # PGD, the penultimate-feature attack): label-free ones always, label-based ones when the
    # source shares the target's labels. Adding an attack to the suite adds it to every audit.
    suite = [entry for entry in attacks.transfer_suite(label_attacks)
             if entry.name not in CLASSIC_ATTACKS]
    if suite:
        notes.append("Transfer suite beyond FGSM/PGD/feature: "
                     + ", ".join(f"`{e.name}` ({e.summary})" for e in suite) + ".")
    eps_bar = progress_bar(eps_list, desc="audit ε", disable=not progress, leave=False)
    sweeps: dict[str, dict[float, torch.Tensor]] = {}
    if label_attacks:
        sweeps["fgsm-transfer"] = _fgsm_sweep(src.model, x, y, eps_list, batch_size, dev)
    for a in audited:
        sweeps[f"fgsm-white:{a.label}"] = _fgsm_sweep(a.model, x, y, eps_list, batch_size, dev)
    for k, e in enumerate(eps_bar):
        gen = torch.Generator().manual_seed(seed * 7919 + k)
        noisy = attacks.uniform_noise(x, e, generator=gen)
        _attack_rows(res, audited, arch, "noise", e, lambda a, n=noisy: n, y, batch_size)
        if label_attacks:
            adv = sweeps["fgsm-transfer"][e]
            _attack_rows(res, audited, arch, "fgsm-transfer", e, lambda a, v=adv: v, y, batch_size)
            adv = craft(lambda xb, yb, e=e, g=gen: attacks.pgd(src.model, xb, yb, e,
                                                               steps=pgd_steps, generator=g),
                        y, f"PGD on source ε={e:.4f}")
            _attack_rows(res, audited, arch, "pgd-transfer", e, lambda a, v=adv: v, y, batch_size)
        adv = craft(lambda xb, e=e, g=gen: attacks.feature_attack(
            src.model, xb, e, steps=feature_steps, neuron="best", candidates=candidates,
            features=feat_mode, generator=g), None, f"feature attack ε={e:.4f}")
        _attack_rows(res, audited, arch, "feature-transfer", e, lambda a, v=adv: v, y, batch_size)
        for entry in suite:  # the rest of the registry's transfer suite, crafted on the source
            adv = craft(lambda xb, yb=None, f=entry, e=e, g=gen: f(
                src.model, xb, yb, eps=e, steps=pgd_steps, generator=g),
                y if entry.needs_labels else None, f"{entry.name} on source ε={e:.4f}")
            _attack_rows(res, audited, arch, f"{entry.name}-transfer", e, lambda a, v=adv: v, y,
                         batch_size)
        # ---------------------------------------------------- white-box references
        _attack_rows(res, audited, arch, "fgsm-white", e,
                     lambda a, e=e: sweeps[f"fgsm-white:{a.label}"][e], y, batch_size)
        for a in audited:
            adv = craft(lambda xb, yb, m=a.model, e=e, g=gen: attacks.pgd(
                m, xb, yb, e, steps=pgd_steps, generator=g), y, f"PGD white-box ε={e:.4f}")
            _attack_rows(res, [a], arch, "pgd-white", e, lambda _a, v=adv: v, y, batch_size)
        res.flush()
    _gamma_rows(res)
    res.flush()
    df = res.frame()
    seconds = time.perf_counter() - t_start
    log.info("audit of %s finished in %.1f s (%d images, %d ε)", target, seconds, len(y),
             len(eps_list))
    if out_dir is not None:
        from .report import write_audit_report

        write_audit_report(df, out_dir, source=src.spec, target=tgt.spec, data=data,
                           notes=notes, label_attacks=label_attacks, seconds=seconds)
    df.attrs.update(notes=notes, seconds=seconds, label_attacks=label_attacks)
    return df


def _fgsm_sweep(model: TGModel, x: torch.Tensor, y: torch.Tensor, eps_list: list[float],
                batch_size: int, device: torch.device) -> dict[float, torch.Tensor]:
    """FGSM at every ε from one gradient per batch (crafted on ``model``, results on the CPU)."""
    parts: dict[float, list[torch.Tensor]] = {e: [] for e in eps_list}
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        for e, adv in attacks.fgsm_sweep(model, xb, yb, eps_list).items():
            parts[e].append(adv.cpu())
    return {e: torch.cat(v) for e, v in parts.items()}

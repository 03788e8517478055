"""transferguard performance benchmarks: our code against its physical limit and bare loops.

Every benchmark times *our* call and a *reference* in the same process, interleaved (order
alternating A B, B A, … so slow drift hits both sides alike), and reports the **median of the
paired ratios** next to the medians of both sides. These machines are shared and noisy, so a
ratio of two neighbouring measurements is far more stable than any absolute time.

Benchmarks (``--only NAME``, repeatable):

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

Results are printed as a table and written to ``benchmarks/latest.json`` and ``latest.md``
(groups not run this time keep their previous entries, marked with their own date).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENDOR = Path(os.environ.get("TG_BENCH_VENDOR", "~/.cache/transferguard-bench")).expanduser()
TORCHATTACKS_VERSION = "3.5.1"
GROUPS = ("fgsm_sweep", "pgd", "train", "startup", "demo")

#: A timed case: untimed setup that returns the callable to time. The callable may return a
#: dict of named phase durations (seconds) measured inside it.
Case = Callable[[], Callable[[], dict[str, float] | None]]


# --------------------------------------------------------------------------------- results
@dataclass
class Row:
    """One line of the results table.

    ``ours`` and ``reference`` are medians in ``unit``; ``ratio`` is the median of the paired
    ratios, oriented as ``direction`` says (``"<="``: ours/reference, lower is better;
    ``">="``: reference-cost/ours-cost, i.e. a speed-up or throughput ratio, higher is better).
    """

    benchmark: str
    ours: float
    reference: float
    unit: str
    ratio: float
    direction: str
    target: float | None
    reference_name: str
    note: str = ""
    passed: bool | None = field(default=None)

    def __post_init__(self) -> None:
        if self.target is not None and math.isfinite(self.ratio):
            self.passed = (self.ratio <= self.target if self.direction == "<="
                           else self.ratio >= self.target)

    @property
    def target_text(self) -> str:
        return "-" if self.target is None else f"{self.direction} {self.target:g}"

    @property
    def status(self) -> str:
        return "info" if self.passed is None else ("PASS" if self.passed else "FAIL")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def interleaved(cases: dict[str, Case], reps: int, warmup: int = 1, *, collect: bool = True
                ) -> dict[str, list[dict[str, float]]]:
    """Time each case ``reps`` times, interleaved in alternating order, after ``warmup`` runs.

    Returns, per case, one dict per repetition with ``"total"`` (seconds) plus any phases the
    timed callable reported. With ``collect`` garbage is collected once per round (a full
    collection costs ~0.5 s with torch loaded); the collector is off while a callable runs.
    """
    names = list(cases)
    out: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for rep in range(warmup + reps):
        order = names if rep % 2 == 0 else names[::-1]
        if collect:
            gc.collect()
        for name in order:
            fn = cases[name]()
            gc.disable()
            try:
                t0 = time.perf_counter()
                phases = fn() or {}
                total = time.perf_counter() - t0
            finally:
                gc.enable()
            if rep >= warmup:
                out[name].append({"total": total, **phases})
    return out


def paired_ratio(num: list[dict[str, float]], den: list[dict[str, float]],
                 key: str = "total", key_den: str | None = None) -> float:
    """Median over repetitions of ``num[i][key] / den[i][key_den]`` (neighbouring runs)."""
    key_den = key_den or key
    ratios = [a[key] / b[key_den] for a, b in zip(num, den, strict=True) if b[key_den] > 0]
    return median(ratios)


def med(runs: list[dict[str, float]], key: str = "total") -> float:
    return median([r[key] for r in runs])


# ------------------------------------------------------------------------------- settings
@dataclass
class Settings:
    """Sizes and repetitions; ``--quick`` shrinks them for a smoke run."""

    reps: int = 6
    warmup: int = 1
    fgsm_batch: int = 256
    fgsm_k: int = 6
    fgsm_targets: int = 3
    pgd_batch: int = 32
    pgd_steps: int = 40
    dtn_steps: int = 8
    dtn_batch: int = 128
    eff_steps: int = 3
    eff_batch: int = 32
    eff_size: int = 64
    #: Training rows get more repetitions: an EfficientNet call is only 3 steps (~1 s), and with
    #: 4 repetitions its paired ratio swung between 0.94 and 1.02 on a quiet machine.
    train_reps: int = 10
    #: Use torchattacks as the per-ε loop (else the bare stand-in), installing it when missing.
    use_torchattacks: bool = True
    install_torchattacks: bool = True

    @classmethod
    def quick(cls) -> Settings:
        return cls(reps=2, warmup=1, train_reps=2, fgsm_batch=64, pgd_batch=16, pgd_steps=10, dtn_steps=3,
                   dtn_batch=64, eff_steps=2, eff_batch=8)


# ------------------------------------------------------------------------------ helpers
def make_model(arch: str, num_classes: int = 10, seed: int = 0) -> torch.nn.Module:
    from transferguard.models import create_model

    torch.manual_seed(seed)
    return create_model(arch, num_classes)


def torchattacks_module(install: bool) -> tuple[Any | None, str]:
    """Import torchattacks from the benchmark's own --target directory (never the project venv).

    Installs it there with ``pip --no-deps`` on first use when ``install``; returns
    ``(module or None, explanation)``.
    """
    target = VENDOR / f"torchattacks-{TORCHATTACKS_VERSION}"
    if not (target / "torchattacks").is_dir() and install:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
               str(target), f"torchattacks=={TORCHATTACKS_VERSION}"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        except (subprocess.SubprocessError, OSError) as err:
            return None, f"torchattacks could not be installed ({type(err).__name__})"
    if not (target / "torchattacks").is_dir():
        return None, "torchattacks not installed (--no-install)"
    if str(target) not in sys.path:
        sys.path.append(str(target))
    try:
        module = importlib.import_module("torchattacks")
    except Exception as err:  # noqa: BLE001 - any import failure means: use the stand-in
        return None, f"torchattacks failed to import on torch {torch.__version__} ({err!r:.80})"
    return module, f"torchattacks {module.__version__} (from {target})"


# --------------------------------------------------------------------------- FGSM sweep
def bench_fgsm_sweep(s: Settings) -> list[Row]:
    """FGSM ε-sweep + white-box/transfer predictions vs the physical limit and a per-ε loop."""
    from transferguard.attacks import fgsm_sweep, predict, transfer_predictions

    eps_list = [2.0**i / 255 for i in range(s.fgsm_k)]  # 1/255 … 32/255 for k = 6
    source = make_model("dtn", seed=0).eval()
    targets = {f"B{i}": make_model("dtn", seed=i + 1).eval() for i in range(s.fgsm_targets)}
    evaluated = [source, *targets.values()]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(s.fgsm_batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (s.fgsm_batch,), generator=g)
    ta, ta_note = (torchattacks_module(s.install_torchattacks) if s.use_torchattacks
                   else (None, "torchattacks not requested"))

    def ours() -> dict[str, float]:
        t0 = time.perf_counter()
        advs = fgsm_sweep(source, x, y, eps_list)
        t1 = time.perf_counter()
        for adv in advs.values():
            predict(source, adv, batch_size=s.fgsm_batch)
            transfer_predictions(adv, targets, batch_size=s.fgsm_batch)
        return {"craft": t1 - t0}

    def limit() -> dict[str, float]:
        t0 = time.perf_counter()
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(source(xg), y), xg)
        sign = grad.sign()
        t1 = time.perf_counter()
        with torch.inference_mode():
            for eps in eps_list:
                adv = (x + eps * sign).clamp_(0.0, 1.0)
                for model in evaluated:
                    model(adv).argmax(dim=1)
        return {"craft": t1 - t0}

    def per_eps() -> dict[str, float]:
        craft = 0.0
        for eps in eps_list:
            t0 = time.perf_counter()
            if ta is not None:
                adv = ta.FGSM(source, eps=eps)(x, y)
            else:  # bare stand-in: the gradient is recomputed for every ε
                xg = x.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(F.cross_entropy(source(xg), y), xg)
                adv = (x + eps * grad.sign()).clamp(0.0, 1.0).detach()
            craft += time.perf_counter() - t0
            with torch.no_grad():
                for model in evaluated:
                    model(adv).argmax(dim=1)
        return {"craft": craft}

    runs = interleaved({"ours": lambda: ours, "limit": lambda: limit,
                        "per_eps": lambda: per_eps}, s.reps, s.warmup)
    loop_name = "torchattacks.FGSM per ε" if ta is not None else "bare per-ε loop (stand-in)"
    # The end-to-end speed-up over a per-ε loop cannot exceed what the shared evaluation leaves.
    fb = med(runs["limit"], "craft")
    ev = med(runs["limit"]) - fb
    ceiling = (s.fgsm_k * fb + ev) / (fb + ev) if fb + ev > 0 else math.nan
    speedup = paired_ratio(runs["per_eps"], runs["ours"])
    setup = (f"DTN 32x32 batch {s.fgsm_batch}, k={s.fgsm_k}, white-box + {s.fgsm_targets} "
             "transfer targets")
    return [
        Row("fgsm_sweep: sweep+eval vs physical limit", med(runs["ours"]), med(runs["limit"]), "s",
            paired_ratio(runs["ours"], runs["limit"]), "<=", 1.1,
            "1 fwd+bwd + k*(1+targets) fwd, bare PyTorch", setup),
        Row("fgsm_sweep: crafting vs 1 fwd+bwd", med(runs["ours"], "craft"),
            med(runs["limit"], "craft"), "s", paired_ratio(runs["ours"], runs["limit"], "craft"),
            "<=", None, "1 fwd+bwd + sign, bare PyTorch",
            "info: fgsm_sweep alone (checks, eval-mode switch, k projections)"),
        Row("fgsm_sweep: crafting speed-up vs per-eps loop", med(runs["ours"], "craft"),
            med(runs["per_eps"], "craft"), "s",
            paired_ratio(runs["per_eps"], runs["ours"], "craft"), ">=", 3.0, loop_name,
            f"{ta_note}; crafting only (k gradients vs 1)"),
        # The issue asked for >= 3x end-to-end; no sweep can beat the ceiling, so the row is
        # informational and the next one checks that we reach the ceiling.
        Row("fgsm_sweep: end-to-end speed-up vs per-eps loop", med(runs["ours"]),
            med(runs["per_eps"]), "s", speedup, ">=", None, loop_name,
            f"info: asked >= 3x, unreachable: arithmetic ceiling {ceiling:.2f}x, both sides need "
            f"the same {s.fgsm_k * len(evaluated)} evaluation forwards"),
        Row("fgsm_sweep: end-to-end speed-up / its arithmetic ceiling", speedup, ceiling, "x",
            speedup / ceiling, ">=", 0.95, "(k*fb + eval) / (fb + eval) from the limit's phases",
            "how much of the possible end-to-end gain the sweep delivers"),
    ]


# ---------------------------------------------------------------------------------- PGD
def bare_pgd_ce(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                steps: int, alpha: float, gen: torch.Generator) -> torch.Tensor:
    """Textbook L∞ PGD with a uniform random start (the reference of identical math)."""
    x_adv = x + (torch.rand(x.shape, generator=gen) * 2.0 - 1.0) * eps
    x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
    for _ in range(steps):
        xa = x_adv.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="none").sum()
        (grad,) = torch.autograd.grad(loss, xa)
        x_adv = torch.min(torch.max(x_adv + alpha * grad.sign(), x - eps), x + eps).clamp_(0.0, 1.0)
    return x_adv


def bare_pgd_feature(model: Any, x: torch.Tensor, eps: float, steps: int, alpha: float,
                     neuron: int, m: float, gen: torch.Generator) -> torch.Tensor:
    """PGD minimising ‖f(x) − m·e_k‖² on penultimate features (reference of identical math)."""
    x_adv = x + (torch.rand(x.shape, generator=gen) * 2.0 - 1.0) * eps
    x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
    target = torch.zeros(len(x), model.feature_dim)
    target[:, neuron] = m
    for _ in range(steps):
        xa = x_adv.detach().requires_grad_(True)
        loss = -(model.forward_features(xa) - target).pow(2).sum(dim=1).sum()
        (grad,) = torch.autograd.grad(loss, xa)
        x_adv = torch.min(torch.max(x_adv + alpha * grad.sign(), x - eps), x + eps).clamp_(0.0, 1.0)
    return x_adv


def bench_pgd(s: Settings) -> list[Row]:
    """40-step PGD (CE) and the feature attack (fixed neuron) vs bare loops; outputs compared."""
    from transferguard.attacks import feature_attack, pgd

    model = make_model("dtn", seed=0).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(s.pgd_batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (s.pgd_batch,), generator=g)
    eps, alpha, steps = 8 / 255, 2 / 255, s.pgd_steps
    outputs: dict[str, torch.Tensor] = {}

    def run(name: str, fn: Callable[[torch.Generator], torch.Tensor]) -> Case:
        def setup() -> Callable[[], None]:
            gen = torch.Generator().manual_seed(7)

            def timed() -> None:
                outputs[name] = fn(gen)

            return timed

        return setup

    rows = []
    variants = {
        "ce": (lambda gen: pgd(model, x, y, eps, steps=steps, step_size=alpha, generator=gen),
               lambda gen: bare_pgd_ce(model, x, y, eps, steps, alpha, gen)),
        "feature": (lambda gen: feature_attack(model, x, eps, steps=steps, step_size=alpha,
                                               neuron=0, generator=gen),
                    lambda gen: bare_pgd_feature(model, x, eps, steps, alpha, 0, 1000.0, gen)),
    }
    for loss, (ours_fn, bare_fn) in variants.items():
        runs = interleaved({"ours": run("ours", ours_fn), "bare": run("bare", bare_fn)},
                           s.reps, s.warmup)
        same = torch.equal(outputs["ours"], outputs["bare"])
        label = "cross-entropy" if loss == "ce" else "feature loss, neuron 0"
        rows.append(Row(f"pgd-{steps} {label}: throughput vs bare loop", med(runs["ours"]),
                        med(runs["bare"]), "s", paired_ratio(runs["bare"], runs["ours"]), ">=",
                        0.95, "bare PyTorch PGD loop",
                        f"DTN 32x32 batch {s.pgd_batch}; outputs bit-identical: {same}"))
    return rows


# ----------------------------------------------------------------------------- training
def bare_train(model: Any, teacher: Any | None, lambda_feat: float, train: Any, steps: int,
               batch_size: int, lr: float, wd: float, head_wd: float, momentum: float,
               seed: int) -> None:
    """Plain SGD loop of the same math as ``fit``'s main stage (same data order and seeds)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n = len(train)
    order, pos = torch.randperm(n, generator=gen), 0
    head_ids = {id(p) for p in model.head.parameters()}
    backbone = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    opt = torch.optim.SGD([{"params": backbone, "weight_decay": wd},
                           {"params": list(model.head.parameters()), "weight_decay": head_wd}],
                          lr=lr, momentum=momentum)
    if teacher is not None:
        teacher.eval()
    model.train()
    for _ in range(steps):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        x = train.x[idx].float().div_(255.0)
        y = train.y[idx]
        outs, feats = model.forward_stages(x)
        loss = F.cross_entropy(model.head(feats), y)
        if teacher is not None:
            with torch.no_grad():
                t_outs, _ = teacher.forward_stages(x)
            loss = loss + lambda_feat * sum(F.mse_loss(a, b) for a, b in zip(outs, t_outs,
                                                                           strict=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _fit_setup(arch: str, method_name: str, size: int, batch: int, steps: int
               ) -> tuple[Callable[[], Callable[[], None]], Callable[[], Callable[[], None]], dict]:
    """(ours, bare) setups for ``steps`` training steps of ``method_name`` on random uint8 data.

    Each setup deep-copies the prepared model, so every timed call starts from the same weights;
    the last trained models are kept in the returned dict to compare them afterwards.
    """
    from transferguard.data.base import Split
    from transferguard.methods import create_method
    from transferguard.training import TrainConfig, fit

    g = torch.Generator().manual_seed(3)
    n = batch * (steps + 1)
    train = Split(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
                  torch.randint(0, 10, (n,), generator=g))
    source = make_model(arch, seed=0).eval()
    # The Renofeation *main* stage: its SWA stage is switched off here.
    method = create_method(method_name, **({"swa": False} if method_name == "renofeation" else {}))
    base = method.prepare(make_model(arch, seed=1), source, 10)
    teacher = source if method.needs_teacher else None
    cfg = TrainConfig(iterations=steps, batch_size=batch, lr=0.01, weight_decay=5e-4,
                      momentum=0.9, progress=False, device="cpu", seed=0,
                      eval_every=10**9)
    head_wd = cfg.weight_decay if cfg.head_weight_decay is None else cfg.head_weight_decay
    lam = float(method.lambda_feat or 0.0)
    trained: dict[str, Any] = {}

    def ours() -> Callable[[], None]:
        model = copy.deepcopy(base)
        trained["ours"] = model

        def timed() -> None:
            fit(model, method, train, None, cfg, teacher=teacher)

        return timed

    def bare() -> Callable[[], None]:
        model = copy.deepcopy(base)
        trained["bare"] = model
        return lambda: bare_train(model, teacher, lam, train, steps, batch, cfg.lr,
                                  cfg.weight_decay, head_wd, cfg.momentum, cfg.seed)

    return ours, bare, trained


def _train_case(arch: str, method_name: str, size: int, batch: int, steps: int,
                reps: int, warmup: int) -> tuple[dict[str, list[dict[str, float]]], bool]:
    ours, bare, trained = _fit_setup(arch, method_name, size, batch, steps)
    runs = interleaved({"ours": ours, "bare": bare}, reps, warmup)
    a, b = trained["ours"].state_dict(), trained["bare"].state_dict()
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return runs, same


def bench_train(s: Settings) -> list[Row]:
    """fit() steps/s vs a bare loop for ft / delta / Renofeation, and Renofeation/ft cost.

    The Renofeation/ft row interleaves the two methods' ``fit`` calls directly (ft, reno, reno,
    ft, ...) and takes the median of neighbouring-pair ratios, so load drift cancels.
    """
    rows = []
    configs = [("dtn", 32, s.dtn_batch, s.dtn_steps, "DTN"),
               ("efficientnet_lite0", s.eff_size, s.eff_batch, s.eff_steps, "EffNet-Lite0")]
    for arch, size, batch, steps, label in configs:
        for method in ("ft", "delta", "renofeation"):
            runs, same = _train_case(arch, method, size, batch, steps, s.train_reps, s.warmup)
            rows.append(Row(
                f"train {label} {method}: steps/s vs bare loop", steps / med(runs["ours"]),
                steps / med(runs["bare"]), "steps/s", paired_ratio(runs["bare"], runs["ours"]),
                ">=", 0.95, "bare SGD loop",
                f"{size}x{size} batch {batch}, {steps} steps/call; weights bit-identical: {same}"))
        ft, _, _ = _fit_setup(arch, "ft", size, batch, steps)
        reno, _, _ = _fit_setup(arch, "renofeation", size, batch, steps)
        runs = interleaved({"ft": ft, "reno": reno}, s.train_reps, s.warmup)
        rows.append(Row(
            f"train {label}: Renofeation/ft step cost", med(runs["reno"]) / steps,
            med(runs["ft"]) / steps, "s/step", paired_ratio(runs["reno"], runs["ft"]), "<=", 1.5,
            "fine-tune step (fit)",
            "main stage, ft and Renofeation interleaved; teacher forward + stage MSEs + dropout"))
    return rows


# --------------------------------------------------------------------------------- demo
def bench_demo(s: Settings) -> list[Row]:
    """Wall time and peak RSS of ``transferguard reproduce demo`` in fresh temporary folders."""
    exe = Path(sys.executable).with_name("transferguard")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "transferguard.cli"]
    with tempfile.TemporaryDirectory(prefix="tg-bench-demo-") as tmp:
        cmd += ["reproduce", "demo", "--out", f"{tmp}/out", "--store", f"{tmp}/store", "--quiet"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    peak_gib = usage.ru_maxrss * 1024 / 2**30  # Linux reports kilobytes
    ok = proc.returncode == 0
    note = "exit 0" if ok else f"FAILED exit {proc.returncode}: {err.strip()[-200:]}"
    cmd_text = "transferguard reproduce demo --out TMP --store TMP"
    rows = [Row("demo: wall time vs 10-minute budget", wall, 600.0, "s", wall / 600.0, "<=", 1.0,
                "600 s budget", f"{cmd_text}; {note}"),
            Row("demo: peak RSS vs 4 GiB budget", peak_gib, 4.0, "GiB", peak_gib / 4.0, "<=",
                1.0, "4 GiB budget", "ru_maxrss of the child (os.wait4)")]
    if not ok:
        for row in rows:
            row.passed = False
    return rows


#: Error paths of the command line (issue: start-up to a one-line error ≤ 1 s).
STARTUP_CASES = {
    "unknown experiment": ["reproduce", "nosuch"],
    "bad ε": ["attack", "--target", "t.safetensors", "--domain", "ucidigits", "--eps", "2"],
    "finished --out folder": ["attack", "--target", "t.safetensors", "--domain", "ucidigits",
                              "--out", "{done}"],
    "unknown domain": ["train", "--domain", "ucidigitz", "--out", "{tmp}/m"],
    "unknown architecture": ["train", "--domain", "ucidigits", "--arch", "resnet-18", "--out",
                             "{tmp}/m"],
    "unknown method": ["train", "--domain", "ucidigits", "--method", "renofeaton", "--out",
                       "{tmp}/m"],
    "missing model file": ["attack", "--target", "{tmp}/none.safetensors", "--domain",
                           "ucidigits", "--out", "{tmp}/a"],
}


def bench_startup(s: Settings) -> list[Row]:
    """Seconds from launching ``transferguard`` to its one-line error, against a 1 s budget."""
    exe = Path(sys.executable).with_name("transferguard")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "transferguard"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tg-bench-startup-") as tmp:
        done = Path(tmp) / "done"
        done.mkdir()
        (done / "results.csv").write_text("finished\n")
        for name, argv in {"--help (reference)": ["--help"], **STARTUP_CASES}.items():
            cmd = base + [a.format(tmp=tmp, done=done) for a in argv]
            times, code, lines = [], 0, 0
            for _ in range(max(1, s.reps)):
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                times.append(time.perf_counter() - t0)
                code, lines = proc.returncode, len(proc.stderr.strip().splitlines())
            wall = median(times)
            ok = argv == ["--help"] or (code == 2 and lines == 1)
            row = Row(f"startup: {name} → one line", wall, 1.0, "s", wall / 1.0, "<=",
                      None if argv == ["--help"] else 1.0, "1 s budget",
                      f"exit {code}, {lines} stderr line(s)")
            if not ok:
                row.passed = False
            rows.append(row)
    return rows


BENCHMARKS: dict[str, Callable[[Settings], list[Row]]] = {
    "fgsm_sweep": bench_fgsm_sweep, "pgd": bench_pgd, "train": bench_train, "demo": bench_demo,
    "startup": bench_startup,
}


# ------------------------------------------------------------------------------- output
def fmt(v: float) -> str:
    if not math.isfinite(v):
        return "nan"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def table(rows: Sequence[Row]) -> str:
    """A Markdown table of the rows."""
    head = "| benchmark | ours | reference | unit | ratio | target | result | reference is | note |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r.benchmark} | {fmt(r.ours)} | {fmt(r.reference)} | {r.unit} | "
                     f"{r.ratio:.2f} | {r.target_text} | {r.status} | {r.reference_name} | "
                     f"{r.note} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}


def write_results(groups: dict[str, dict[str, Any]], out_dir: Path) -> None:
    """Merge ``groups`` into ``latest.json`` (other groups keep their entries) and ``latest.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "latest.json"
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}
    data.setdefault("groups", {}).update(groups)
    path.write_text(json.dumps(data, indent=2) + "\n")
    parts = ["# Latest benchmark results", "",
             "Written by `benchmarks/run.py`; see RESULTS.md for the discussion. ratio = median of "
             "paired (neighbouring) ratios; `<=`: ours/reference, `>=`: speed-up over the "
             "reference.", ""]
    for name in GROUPS:
        if name not in data["groups"]:
            continue
        g = data["groups"][name]
        parts += [f"## {name}", "", f"`{g['command']}` — {g['date']}, {g['machine']['cpus']} CPUs, "
                  f"{g['machine']['torch_threads']} torch threads, load "
                  f"{g['load_before']} → {g['load_after']}", "",
                  table([Row(**r) for r in g["rows"]]), ""]
    (out_dir / "latest.md").write_text("\n".join(parts))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", action="append", choices=GROUPS, help="run only this benchmark "
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
    names = args.only or [g for g in GROUPS if g != "demo" or args.demo]
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    groups: dict[str, dict[str, Any]] = {}
    all_rows: list[Row] = []
    for name in names:
        load_before = round(os.getloadavg()[0], 2)
        t0 = time.perf_counter()
        rows = BENCHMARKS[name](s)
        groups[name] = {"command": command.strip(), "date": dt.datetime.now(dt.UTC).isoformat(
            timespec="seconds"), "machine": machine(), "load_before": load_before,
            "load_after": round(os.getloadavg()[0], 2), "seconds": round(time.perf_counter() - t0, 1),
            "reps": s.reps, "train_reps": s.train_reps, "malloc_tuned": tuned,
            "quick": args.quick, "rows": [asdict(r) for r in rows]}
        all_rows += rows
        print(f"[{name}] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(table(all_rows))
    write_results(groups, args.out_dir)
    failed = [r.benchmark for r in all_rows if r.passed is False]
    print(f"\n{len(all_rows)} rows, {len(failed)} below target"
          + (": " + "; ".join(failed) if failed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

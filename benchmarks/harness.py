"""The benchmark harness: rows, settings, interleaved timing and the results files.

Everything the groups (``benchmarks/groups/*.py``) share lives here: ``Row`` (one line of the
results table), ``Settings`` (sizes and repetitions), ``interleaved`` (time cases side by side in
alternating order), ``paired_ratio`` / ``med`` / ``median``, ``make_model``, the optional
torchattacks import, and the output (``table``, ``machine``, ``write_results``). It knows no group:
``run.py`` holds the entry point, ``groups/__init__.py`` the registry.
"""

from __future__ import annotations

import gc
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENDOR = Path(os.environ.get("TG_BENCH_VENDOR", "~/.cache/transferguard-bench")).expanduser()
TORCHATTACKS_VERSION = "3.5.1"

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
    #: WRN-16-2's channels-last row: a WRN step at batch 128 costs ≈ 4 DTN steps on 2 cores.
    wrn_steps: int = 2
    wrn_batch: int = 128
    #: Training rows get more repetitions: an EfficientNet call is only 3 steps (~1 s), and with
    #: 4 repetitions its paired ratio swung between 0.94 and 1.02 on a quiet machine.
    train_reps: int = 10
    #: ``audit`` group: images of the timed default audit (None: the whole 1,000-image mnist5k
    #: test split) and of the thorough-vs-fast subset.
    audit_images: int | None = None
    audit_subset: int = 100
    #: Use torchattacks as the per-ε loop (else the bare stand-in), installing it when missing.
    use_torchattacks: bool = True
    install_torchattacks: bool = True
    #: ``gpu`` group (CUDA only): ``fit`` / bare-loop steps per timed call, FGSM batch on the GPU,
    #: and which of its parts run (``train``, ``fgsm``, ``demo``: ``reproduce demo`` fp32 and bf16).
    gpu_steps: int = 20
    gpu_fgsm_batch: int = 1024
    gpu_parts: tuple[str, ...] = ("train", "fgsm", "demo")

    @classmethod
    def quick(cls) -> Settings:
        return cls(reps=2, warmup=1, train_reps=2, fgsm_batch=64, pgd_batch=16, pgd_steps=10,
                   dtn_steps=3, dtn_batch=64, eff_steps=2, eff_batch=8, wrn_steps=1, wrn_batch=16,
                   audit_images=40, audit_subset=16, gpu_steps=5, gpu_fgsm_batch=256)


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


def write_results(groups: dict[str, dict[str, Any]], out_dir: Path,
                  order: Sequence[str] | None = None) -> None:
    """Merge ``groups`` into ``latest.json`` (other groups keep their entries) and ``latest.md``.

    ``latest.md`` lists the groups named in ``order`` (``run.py`` passes the registry's order;
    groups not in it are left out) or, without ``order``, every group in the file's order.
    """
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
    for name in data["groups"] if order is None else order:
        if name not in data["groups"]:
            continue
        g = data["groups"][name]
        parts += [f"## {name}", "", f"`{g['command']}` — {g['date']}, {g['machine']['cpus']} CPUs, "
                  f"{g['machine']['torch_threads']} torch threads, load "
                  f"{g['load_before']} → {g['load_after']}", "",
                  table([Row(**r) for r in g["rows"]]), ""]
    (out_dir / "latest.md").write_text("\n".join(parts))

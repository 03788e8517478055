"""Training configuration: optimisation, schedule, early stopping, SWA, adversarial training, resume."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch

SCHEDULES = ("constant", "cosine")
ADV_MODES = ("mix", "adv")
#: Arithmetic of the training step's forward and loss (weights and optimizer stay fp32).
PRECISIONS = ("fp32", "bf16")


@dataclass
class SWAConfig:
    """Stochastic weight averaging stage run after the main stage (``torch.optim.swa_utils``).

    Renofeation's values: ``iterations=30000, lr=5e-3, average_every=500`` after 90k main
    iterations at lr 1e-2. ``None`` scales them to the run: a third of the main iterations, half
    the main lr, and 60 snapshots. After the stage the averaged weights replace the model's and
    BN statistics are re-estimated on the training data (``bn_update``).
    """

    iterations: int | None = None
    lr: float | None = None
    average_every: int | None = None
    bn_update: bool = True

    def resolve(self, main_iterations: int, main_lr: float) -> tuple[int, float, int]:
        iters = self.iterations if self.iterations is not None else max(1, main_iterations // 3)
        lr = self.lr if self.lr is not None else main_lr / 2
        every = self.average_every if self.average_every is not None else max(1, iters // 60)
        if iters < 1 or every < 1 or every > iters or lr <= 0:
            raise ConfigError(f"SWA needs iterations >= average_every >= 1 and lr > 0, got "
                              f"iterations={iters}, average_every={every}, lr={lr}")
        return iters, lr, every


@dataclass
class AdvTrainConfig:
    """PGD-k adversarial training (L∞, pixel space), combinable with any method.

    ``mode="mix"``: each step trains on the clean batch concatenated with its adversarial
    version (equal weight; the feature regulariser sees both halves) — our reading of the
    DELTA/Renofeation adversarial-training code. ``mode="adv"``: adversarial examples only
    (Madry et al.). Renofeation's Table 6 uses PGD-3 and 2x the iterations. ``step_size``
    defaults to ``2.5 * eps / steps``.
    """

    eps: float = 4 / 255
    steps: int = 3
    step_size: float | None = None
    mode: str = "mix"
    random_start: bool = True

    def resolved_step_size(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps


@dataclass
class TrainConfig:
    """Everything :func:`~transferguard.training.fit` needs besides the model, method and data.

    Give exactly one of ``iterations`` (the Renofeation paper counts iterations) or ``epochs``
    (one epoch = ``len(train) // batch_size`` iterations). ``eval_every`` (iterations) defaults
    to one epoch; ``patience`` counts evaluations without a validation improvement (None: off).
    The best-validation weights are restored at the end of the main stage — never the test set.
    ``head_weight_decay`` (Renofeation: a fixed 1e-2 on the last linear layer) defaults to
    ``weight_decay``. ``checkpoint_path`` enables resume; ``max_iterations_this_call`` stops the
    call early without saving (as if killed), for tests and time-sliced jobs.
    ``precision="bf16"`` runs each step's forward and loss under bf16 autocast (channels-last
    memory on CUDA); it trains a different model, so it is result-determining. ``"fp32"`` is
    the plain code path and is left out of :meth:`fingerprint` (states saved before the field
    existed still resume).
    """

    iterations: int | None = None
    epochs: float | None = None
    batch_size: int = 128
    lr: float = 0.01
    weight_decay: float = 5e-4
    momentum: float = 0.9
    schedule: str = "constant"
    eval_every: int | None = None
    patience: int | None = None
    head_weight_decay: float | None = None
    swa: SWAConfig | None = None
    adv_train: AdvTrainConfig | None = None
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    checkpoint_path: str | Path | None = None
    max_iterations_this_call: int | None = None
    eval_batch_size: int = 512
    desc: str = "train"
    precision: str = "fp32"

    #: Fields that do not change the result (excluded from the resume fingerprint).
    VOLATILE: ClassVar[tuple[str, ...]] = ("device", "progress", "checkpoint_path",
                                           "max_iterations_this_call", "eval_batch_size", "desc")

    def __post_init__(self) -> None:
        if isinstance(self.swa, dict):
            self.swa = SWAConfig(**self.swa)
        if isinstance(self.adv_train, dict):
            self.adv_train = AdvTrainConfig(**self.adv_train)
        if (self.iterations is None) == (self.epochs is None):
            raise ConfigError("TrainConfig needs exactly one of iterations or epochs")
        if self.iterations is not None and self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1, got {self.iterations}")
        if self.epochs is not None and self.epochs <= 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs}")
        if self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("batch_size must be >= 1 and lr > 0")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ConfigError(f"eval_every must be >= 1, got {self.eval_every}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 (or None), got {self.patience}")
        if self.adv_train is not None and self.adv_train.mode not in ADV_MODES:
            raise ConfigError(f"unknown adversarial-training mode {self.adv_train.mode!r}; "
                              f"choose one of {ADV_MODES}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")

    def iterations_per_epoch(self, n_train: int) -> int:
        return max(1, n_train // self.batch_size)

    def total_iterations(self, n_train: int) -> int:
        """Main-stage iterations (without SWA)."""
        if self.iterations is not None:
            return int(self.iterations)
        return max(1, math.ceil(float(self.epochs) * self.iterations_per_epoch(n_train)))

    def fingerprint(self) -> str:
        """JSON of the result-determining fields (a resumed run must match it)."""
        d = {k: v for k, v in asdict(self).items() if k not in self.VOLATILE}
        if d["precision"] == "fp32":  # the default path: same fingerprint as before the field
            del d["precision"]
        return json.dumps(d, sort_keys=True, default=str)


def default_precision(device: str | torch.device, scale: str | None = None) -> str:
    """The training precision ``auto`` means: ``bf16`` on CUDA, except at ``scale`` ``offline``
    or ``offline-gpu``; ``fp32`` on the CPU.

    Measured on one H200 (benchmarks/RESULTS.md, ``gpu`` group): bf16 autocast + channels-last
    trained 1.12× (EfficientNet-Lite0, 224 px) to 2.43× (WRN-28-10) faster than fp32, but the
    32-px DTN 0.85× as fast, and ``reproduce demo`` took the same wall time in both (41.7 s vs
    41.8 s: the offline models leave the GPU mostly idle). So the offline scales keep fp32 on a
    GPU too, which also keeps their store keys and results those of a CPU run. The CPU keeps
    fp32: bf16's CPU speed depends on the CPU's bf16 instructions (a DTN step was 1.85× faster
    with AVX512-BF16; ask for ``bf16`` explicitly).
    """
    kind = getattr(device, "type", None) or str(device).split(":")[0]  # no torch import needed
    return "bf16" if kind == "cuda" and scale not in ("offline", "offline-gpu") else "fp32"


def resolve_precision(precision: str | None, device: str | torch.device,
                      scale: str | None = None) -> str:
    """``precision`` checked, with ``auto`` / None replaced by :func:`default_precision`."""
    if precision is None or precision == "auto":
        return default_precision(device, scale)
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose auto or one of {PRECISIONS}")
    return precision


def lr_factor(schedule: str, iteration: int, total: int) -> float:
    """Multiplier of the base lr at ``iteration`` (0-based) of ``total``.

    ``cosine`` is ``CosineAnnealingLR(T_max=total, eta_min=0)`` stepped once per iteration:
    ``0.5 * (1 + cos(pi * iteration / total))``.
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(iteration, total) / total))
    raise ConfigError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")

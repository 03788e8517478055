"""One method-agnostic training loop: SGD + schedule, validation early stopping, SWA, PGD
adversarial training, bit-exact resume.

The loop never branches on the method: it asks the :class:`~transferguard.methods.TransferMethod`
for parameter groups, the training mode, a one-off ``setup`` and the regulariser. A step is::

    stage_outs, feats = model.forward_stages(x)            # x float in [0, 1]
    loss = CE(model.head(feats), y) + method.regularizer(model, x, stage_outs, feats, teacher_outs)

with the teacher's stage outputs computed under ``no_grad`` in eval mode. The main stage keeps
the best-validation weights and restores them at its end (the paper-1 code selected on the test
set; we never look at it). An optional SWA stage then runs at constant lr from those weights,
averages every ``average_every`` iterations (``torch.optim.swa_utils.AveragedModel``) and
re-estimates BN statistics (``update_bn``).

Determinism and resume: the data order comes from a dedicated ``torch.Generator`` seeded with
``config.seed``; ``fit`` seeds torch's global RNG (dropout) with the same seed at a fresh start.
With ``checkpoint_path`` every evaluation atomically saves weights, optimizer, RNG and data-order
states, best-so-far and history, so a killed run restarted with the same config continues
bit-identically (on the same device and thread settings).

Structure: :func:`fit` checks its inputs and resolves the stages (``_prepare``), builds a
:class:`TrainState` (everything a checkpoint saves), resumes it (``_Checkpointer``), runs
``_train_loop`` (``_step``, ``_evaluate_step``, ``_select``, ``_enter_swa``) and ends with
``_finish`` (``_finish_swa`` or the best weights).

Precision: ``config.precision="bf16"`` runs the forward passes and the loss of each step
(student, teacher, regulariser) under ``torch.autocast(dtype=torch.bfloat16)``; weights, gradients
and the optimizer stay fp32, and on CUDA the models and batches use channels-last memory (restored
to the standard layout when ``fit`` returns). PGD crafting for adversarial training, validation
and the SWA BN update run in fp32. ``"fp32"`` is exactly the plain code path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, update_bn

from .._progress import progress_bar
from ..data.base import Split, to_float
from ..errors import CheckpointError, ConfigError, DataError
from ..models.base import TGModel
from ..utils import resolve_device
from .config import SWAConfig, TrainConfig, lr_factor
from .state import STATE_FORMAT, load_state, save_state

if TYPE_CHECKING:
    from ..methods.base import TransferMethod

log = logging.getLogger(__name__)

#: ``on_step(iteration, phase, model)``; returning True stops the call at once (like a kill).
StepHook = Callable[[int, str, TGModel], bool | None]


@dataclass
class TrainResult:
    """What :func:`fit` returns. Accuracies are fractions in [0, 1]."""

    model: TGModel
    history: list[dict[str, Any]]
    best_val_acc: float | None
    best_iteration: int | None
    iterations_run: int
    stopped_early: bool
    swa_used: bool
    #: False when the call stopped before the end (``max_iterations_this_call`` or the hook).
    completed: bool = True
    #: Validation accuracy of the returned model (after SWA + BN update when SWA ran).
    final_val_acc: float | None = None
    #: Training throughput of this call (optimizer steps only, evaluation excluded).
    images_per_second: float = 0.0
    seconds: float = 0.0
    method: dict[str, Any] = field(default_factory=dict)


def evaluate(model: TGModel, split: Split, batch_size: int = 512,
             device: torch.device | str | None = None) -> float:
    """Top-1 accuracy (fraction) of ``model`` on ``split``, in eval mode under inference_mode."""
    if len(split) == 0:
        raise DataError("cannot evaluate on an empty split")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.inference_mode():
            for x, y in split.batches(batch_size, device=device):
                correct += int((model(x).argmax(dim=1) == y).sum())
    finally:
        model.train(was_training)
    return correct / len(split)


class _Batches:
    """Endless seeded mini-batch indices: a fresh permutation per epoch, last partial batch dropped."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n = n
        self.batch_size = min(batch_size, n)
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(n, generator=self.generator)
        self.pos = 0
        self.epoch = 0
        #: The epoch's order on an accelerator, copied there once per epoch (not saved).
        self._order_on: torch.Tensor | None = None

    def next(self, device: torch.device | None = None) -> torch.Tensor:
        """The next batch's indices, on ``device`` when given (the CPU generator decides the
        order everywhere; on a GPU each epoch's order is copied once, so a step copies nothing
        from the host — a copy from pageable memory would wait for the GPU's queue)."""
        if self.pos + self.batch_size > self.n:
            self.order = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
            self.epoch += 1
            self._order_on = None
        order = self.order
        if device is not None and device.type != "cpu":
            if self._order_on is None or self._order_on.device != device:
                self._order_on = self.order.to(device)
            order = self._order_on
        idx = order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": self.order.clone(),
                "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].clone()
        self.pos = int(state["pos"])
        self.epoch = int(state["epoch"])
        self._order_on = None


def _method_fingerprint(method: TransferMethod) -> str:
    return json.dumps({"name": method.name, **method.options()}, sort_keys=True, default=str)


# ---------------------------------------------------------------------------- one call's setup
@dataclass
class _Run:
    """What a :func:`fit` call fixes at its start and never saves: inputs, device and stage plan."""

    model: TGModel
    method: TransferMethod
    train: Split
    val: Split | None
    config: TrainConfig
    teacher: TGModel | None
    device: torch.device
    main_total: int
    swa_cfg: SWAConfig | None
    swa_iters: int
    swa_lr: float
    swa_every: int
    per_epoch: int
    eval_every: int
    #: :func:`transferguard.attacks.pgd` when adversarial training is on (imported lazily).
    pgd: Callable[..., torch.Tensor] | None
    #: Models and batches in channels-last memory (bf16 on CUDA; some architectures on the CPU).
    channels_last: bool = False
    #: The training images (uint8) and labels the steps index: on the device when they fit
    #: (:func:`_resident`), so a CUDA step copies nothing from the host.
    train_x: torch.Tensor | None = None
    train_y: torch.Tensor | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        """The training step's forward context: bf16 autocast, or nothing for fp32."""
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def make_optimizer(self, lr: float) -> torch.optim.Optimizer:
        groups = self.method.parameter_groups(self.model, self.config)
        if not groups:
            raise ConfigError(f"method {self.method.name!r} left no trainable parameter")
        for g in groups:
            g["lr"] = lr
        return torch.optim.SGD(groups, lr=lr, momentum=self.config.momentum)


#: Largest share of a GPU's free memory the training split may take to live on it.
RESIDENT_FRACTION = 0.25


def _resident(split: Split, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``split``'s images and labels where the steps should read them.

    On CUDA they move to the GPU once (uint8, so a 50k-image 32 px set is 150 MB) when they take
    at most :data:`RESIDENT_FRACTION` of its free memory; each step then indexes device memory
    instead of copying a batch from the host. Elsewhere (CPU, or too large) they stay put.
    """
    if device.type != "cuda":
        return split.x, split.y
    free, _ = torch.cuda.mem_get_info(device)
    need = split.x.element_size() * split.x.nelement() + split.y.element_size() * len(split.y)
    if need > RESIDENT_FRACTION * free:
        log.info("training split (%.1f GiB) stays on the host: more than %.0f%% of the GPU's free "
                 "memory", need / 2**30, 100 * RESIDENT_FRACTION)
        return split.x, split.y
    return split.x.to(device), split.y.to(device)


def uses_channels_last(model: TGModel, device: torch.device, precision: str) -> bool:
    """Whether training steps run in channels-last memory: bf16 convolutions on CUDA (tensor
    cores), and on the CPU the architectures that declare it faster (``channels_last_cpu``)."""
    if device.type == "cpu":
        return model.channels_last_cpu
    return precision == "bf16" and device.type == "cuda"


def _prepare(model: TGModel, method: TransferMethod, train: Split, val: Split | None,
             config: TrainConfig, teacher: TGModel | None) -> _Run:
    """Check the inputs, move the models to the device and resolve the stages (main, SWA)."""
    if len(train) == 0:
        raise DataError("the training split is empty")
    if method.needs_teacher and teacher is None:
        raise ConfigError(f"method {method.name!r} needs teacher=<source model>")
    val = val if val is not None and len(val) > 0 else None
    device = resolve_device(config.device)
    model.to(device)
    teacher = teacher if method.needs_teacher else None
    if teacher is not None:
        teacher.to(device).eval()
    channels_last = uses_channels_last(model, device, config.precision)
    if channels_last:
        for m in (model, teacher):
            if m is not None:
                m.to(memory_format=torch.channels_last)
    main_total = config.total_iterations(len(train))
    swa_cfg = config.swa if config.swa is not None else (SWAConfig() if method.swa else None)
    swa_iters, swa_lr, swa_every = swa_cfg.resolve(main_total, config.lr) if swa_cfg else (0, 0.0, 1)
    per_epoch = config.iterations_per_epoch(len(train))
    pgd = None
    if config.adv_train is not None:
        from ..attacks import pgd  # lazy: attacks depend on models only, not on training
    train_x, train_y = _resident(train, device)
    return _Run(model, method, train, val, config, teacher, device, main_total, swa_cfg, swa_iters,
                swa_lr, swa_every, per_epoch, config.eval_every or per_epoch, pgd, channels_last,
                train_x, train_y)


# ---------------------------------------------------------------------------- training state
#: :class:`TrainState` fields saved under their own names, in this order (the checkpoint's keys).
_SAVED_FIELDS = ("phase", "iteration", "main_end", "best_acc", "best_iter", "bad_evals",
                 "stopped_early", "history", "loss_sum", "loss_count")


@dataclass
class TrainState:
    """Everything a training changes as it runs; a checkpoint saves all of it (plus the RNGs)."""

    optimizer: torch.optim.Optimizer
    batches: _Batches
    #: Random stream of the PGD starts (adversarial training).
    adv_gen: torch.Generator
    #: End of the main stage (set to the stopping iteration when early stopping fires).
    main_end: int
    phase: str = "main"
    iteration: int = 0
    best_acc: float | None = None
    best_iter: int | None = None
    #: Evaluations since the last improvement (the patience counter).
    bad_evals: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    #: Training-loss sum and count since the last evaluation.
    loss_sum: float = 0.0
    loss_count: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    swa_model: AveragedModel | None = None
    #: ``loss_sum`` plus the losses of the steps since, summed on the device in float64 (not
    #: saved; folded back by :meth:`flush_loss`). A step never waits for the device to read its
    #: loss; the sum is the same, in the same order, as adding the Python floats one by one.
    loss_acc: torch.Tensor | None = None

    def add_loss(self, loss: torch.Tensor) -> None:
        """Add one step's (scalar) loss without a host synchronisation."""
        if self.loss_acc is None:
            self.loss_acc = torch.tensor(self.loss_sum, dtype=torch.float64, device=loss.device)
        self.loss_acc += loss.detach().to(torch.float64)
        self.loss_count += 1

    def flush_loss(self) -> None:
        """Read the device-side sum into ``loss_sum`` (the one host synchronisation)."""
        if self.loss_acc is not None:
            self.loss_sum = float(self.loss_acc)
            self.loss_acc = None

    def end(self, run: _Run) -> int:
        """Iteration at which the training (main stage, then SWA) is done."""
        return self.main_end + run.swa_iters


def _initial_state(run: _Run) -> TrainState:
    optimizer = run.make_optimizer(run.config.lr)
    batches = _Batches(len(run.train), run.config.batch_size, run.config.seed)
    adv_gen = torch.Generator(device=run.device).manual_seed(run.config.seed + 1)
    return TrainState(optimizer, batches, adv_gen, main_end=run.main_total)


@dataclass
class _CallStats:
    """Counters of this call only (not saved)."""

    completed: bool = True
    calls: int = 0
    step_seconds: float = 0.0
    images: int = 0


# ---------------------------------------------------------------------------- checkpointer
class _Checkpointer:
    """Saves the partial training at each evaluation and resumes from it (no path: does nothing)."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.path = Path(run.config.checkpoint_path) if run.config.checkpoint_path else None

    def resume(self, state: TrainState) -> dict[str, Any] | None:
        """Load an existing state file into ``state`` and the model; returns it (None: fresh start).

        The global RNG states are set later by :meth:`seed_rng`, after the method's ``setup``.
        """
        if self.path is None or not self.path.exists():
            return None
        run = self.run
        ck = load_state(self.path)
        if (ck["config"] != run.config.fingerprint()
                or ck["method"] != _method_fingerprint(run.method)):
            raise CheckpointError(f"{self.path} was written by a different training config or "
                                  "method; delete it to start over")
        run.model.load_state_dict(ck["model"])
        run.method.load_state_dict(ck["method_state"])
        for k in _SAVED_FIELDS:
            setattr(state, k, ck[k])
        state.best_state = ck["best_state"]
        if state.phase == "swa":
            state.optimizer = run.make_optimizer(run.swa_lr)
            state.swa_model = AveragedModel(run.model)
            state.swa_model.load_state_dict(ck["swa_model"])
        state.optimizer.load_state_dict(ck["optimizer"])
        state.batches.load_state_dict(ck["data"])
        state.adv_gen.set_state(ck["adv_gen"])
        log.info("%s: resumed from %s at iteration %d", run.config.desc, self.path, state.iteration)
        return ck

    def seed_rng(self, ck: dict[str, Any] | None) -> None:
        """Global RNG (dropout): the saved states on resume, else seeded with ``config.seed``."""
        if ck is not None:
            torch.set_rng_state(ck["rng_cpu"])
            if ck["rng_cuda"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(ck["rng_cuda"])
        else:
            torch.manual_seed(self.run.config.seed)

    def save(self, state: TrainState) -> None:
        if self.path is None:
            return
        run = self.run
        save_state(self.path, {
            "format": STATE_FORMAT, "config": run.config.fingerprint(),
            "method": _method_fingerprint(run.method), "model": run.model.state_dict(),
            "optimizer": state.optimizer.state_dict(), "method_state": run.method.state_dict(),
            **{k: getattr(state, k) for k in _SAVED_FIELDS}, "best_state": state.best_state,
            "swa_model": state.swa_model.state_dict() if state.swa_model is not None else None,
            "data": state.batches.state_dict(), "adv_gen": state.adv_gen.get_state(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        })


# ---------------------------------------------------------------------------- fit
def fit(model: TGModel, method: TransferMethod, train: Split, val: Split | None,
        config: TrainConfig, *, teacher: TGModel | None = None,
        on_step: StepHook | None = None) -> TrainResult:
    """Train ``model`` (already :meth:`~TransferMethod.prepare`-d) with ``method`` on ``train``.

    ``val`` drives early stopping and best-weight selection (None or empty: keep the last
    weights). ``teacher`` (the frozen source model) is required when ``method.needs_teacher``.
    Returns a :class:`TrainResult`; the model is trained in place and returned in eval mode.
    """
    run = _prepare(model, method, train, val, config, teacher)
    state = _initial_state(run)
    checkpointer = _Checkpointer(run)
    ck = checkpointer.resume(state)
    method.setup(model, run.teacher, train, run.device)  # a no-op when its state came from ck
    checkpointer.seed_rng(ck)
    stats = _CallStats()
    t0 = time.perf_counter()
    try:
        _train_loop(run, state, checkpointer, stats, on_step)
        final_acc = _finish(run, state) if stats.completed else None
    finally:
        if run.channels_last:  # hand the models back in the standard layout
            for m in (model, run.teacher):
                if m is not None:
                    m.to(memory_format=torch.contiguous_format)
    model.eval()
    return _result(run, state, stats, final_acc, time.perf_counter() - t0)


def _train_loop(run: _Run, state: TrainState, checkpointer: _Checkpointer, stats: _CallStats,
                on_step: StepHook | None) -> None:
    """Main stage then SWA stage, one step at a time, until the end or a stop (limit, hook)."""
    config = run.config
    bar = progress_bar(total=state.end(run), initial=state.iteration, desc=config.desc,
                       disable=not config.progress)
    try:
        while state.iteration < state.end(run):
            if config.max_iterations_this_call is not None and stats.calls >= config.max_iterations_this_call:
                stats.completed = False
                break
            if state.iteration >= state.main_end and state.phase == "main":
                _enter_swa(run, state)
            phase = state.phase
            lr = _set_lr(run, state)
            s0 = time.perf_counter()
            loss, images = _step(run, state)
            stats.step_seconds += time.perf_counter() - s0
            stats.images += images
            t = state.iteration = state.iteration + 1
            stats.calls += 1
            state.add_loss(loss)
            if phase == "swa" and (t - state.main_end) % run.swa_every == 0:
                state.swa_model.update_parameters(run.model)
            bar.update(1)
            if on_step is not None and on_step(t, phase, run.model):
                stats.completed = False
                break
            if t % run.eval_every == 0 or t == state.main_end or t == state.end(run):
                _evaluate_step(run.model, run.val, config, state, t, lr, run.per_epoch, bar)
                if phase == "main" and run.val is not None and _select(run, state, t):
                    bar.total = state.end(run)
                checkpointer.save(state)
    finally:
        state.flush_loss()
        bar.close()


def _set_lr(run: _Run, state: TrainState) -> float:
    """The lr of this iteration (schedule in the main stage, constant in SWA), set on the groups."""
    config = run.config
    lr = (config.lr * lr_factor(config.schedule, state.iteration, state.main_end)
          if state.phase == "main" else run.swa_lr)
    for g in state.optimizer.param_groups:
        g["lr"] = lr
    return lr


def _step(run: _Run, state: TrainState) -> tuple[torch.Tensor, int]:
    """One SGD step on the next mini-batch (PGD-augmented when configured): (loss, images).

    The loss stays a device tensor: reading it here would make the host wait for every step.
    """
    model, method, device = run.model, run.method, run.device
    idx = state.batches.next(run.train_x.device)
    x = to_float(run.train_x[idx], device)
    y = run.train_y[idx].to(device)
    adv = run.config.adv_train
    if adv is not None:
        x_adv = run.pgd(model, x, y, adv.eps, steps=adv.steps, step_size=adv.resolved_step_size(),
                        random_start=adv.random_start, generator=state.adv_gen)
        x, y = (torch.cat([x, x_adv]), torch.cat([y, y])) if adv.mode == "mix" else (x_adv, y)
    if run.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    method.train_mode(model)
    with run.autocast():  # fp32: a null context, the plain code path
        stage_outs, feats = model.forward_stages(x)
        loss = F.cross_entropy(model.head(feats), y)
        teacher_outs = None
        if run.teacher is not None:
            with torch.no_grad():
                teacher_outs, _ = run.teacher.forward_stages(x)
        loss = loss + method.regularizer(model, x, stage_outs, feats, teacher_outs)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    return loss.detach(), len(x)


def _evaluate_step(model: TGModel, val: Split | None, config: TrainConfig, state: TrainState,
                   t: int, lr: float, per_epoch: int, bar: Any) -> None:
    """Append a history row (mean training loss since the last one, validation accuracy)."""
    acc = evaluate(model, val, config.eval_batch_size) if val is not None else None
    state.flush_loss()
    loss = state.loss_sum / max(1, state.loss_count)
    state.loss_sum, state.loss_count = 0.0, 0
    state.history.append({"iteration": t, "epoch": t / per_epoch, "train_loss": loss,
                          "val_acc": acc, "lr": lr, "phase": state.phase})
    bar.set_postfix(loss=f"{loss:.3f}", val=f"{acc:.3f}" if acc is not None else "-")
    log.debug("%s: iteration %d loss %.4f val %s lr %.3g", config.desc, t, loss, acc, lr)


def _select(run: _Run, state: TrainState, t: int) -> bool:
    """Keep the best-validation weights; True when patience runs out (the main stage ends at t)."""
    acc = state.history[-1]["val_acc"]
    if state.best_acc is None or acc > state.best_acc:
        state.best_acc, state.best_iter, state.bad_evals = acc, t, 0
        state.best_state = {k: v.detach().clone().cpu() for k, v in run.model.state_dict().items()}
        return False
    state.bad_evals += 1
    if run.config.patience is None or state.bad_evals < run.config.patience:
        return False
    log.info("%s: early stop at iteration %d (best %.4f at %d)",
             run.config.desc, t, state.best_acc, state.best_iter)
    state.stopped_early = True
    state.main_end = t
    return True


# ---------------------------------------------------------------------------- SWA stage
def _enter_swa(run: _Run, state: TrainState) -> None:
    """Start the SWA stage from the best weights: constant-lr optimizer, fresh averaged model."""
    if state.best_state is not None:
        run.model.load_state_dict(state.best_state)
    state.optimizer = run.make_optimizer(run.swa_lr)
    state.swa_model = AveragedModel(run.model)
    state.phase = "swa"


def _finish_swa(model: TGModel, swa_model: AveragedModel, method: TransferMethod, train: Split,
                config: TrainConfig, swa_cfg: SWAConfig | None, device: torch.device) -> None:
    """Copy the averaged parameters into ``model`` and re-estimate BN statistics."""
    with torch.no_grad():
        for p, p_avg in zip(model.parameters(), swa_model.module.parameters(), strict=True):
            p.copy_(p_avg)
    if swa_cfg is not None and swa_cfg.bn_update and method.updates_bn_stats:
        loader = (x for x, _ in train.batches(config.batch_size, device=device))
        update_bn(loader, model, device=device)
    log.info("%s: SWA of %d snapshots applied", config.desc, int(swa_model.n_averaged))


# ---------------------------------------------------------------------------- end of a call
def _finish(run: _Run, state: TrainState) -> float | None:
    """A completed training: apply SWA (or restore the best weights); final validation accuracy."""
    model, val = run.model, run.val
    if state.swa_model is not None:
        _finish_swa(model, state.swa_model, run.method, run.train, run.config, run.swa_cfg,
                    run.device)
    elif state.best_state is not None:
        model.load_state_dict(state.best_state)
    if val is None:
        return None
    final_acc = evaluate(model, val, run.config.eval_batch_size, run.device)
    if state.swa_model is not None:
        state.history.append({"iteration": state.iteration, "epoch": state.iteration / run.per_epoch,
                              "train_loss": None, "val_acc": final_acc, "lr": run.swa_lr,
                              "phase": "swa-final"})
    return final_acc


def _result(run: _Run, state: TrainState, stats: _CallStats, final_acc: float | None,
            seconds: float) -> TrainResult:
    ips = stats.images / stats.step_seconds if stats.step_seconds > 0 else 0.0
    log.info("%s: %d iterations this call, %.0f img/s, best val %s", run.config.desc, stats.calls,
             ips, state.best_acc)
    return TrainResult(model=run.model, history=state.history, best_val_acc=state.best_acc,
                       best_iteration=state.best_iter, iterations_run=state.iteration,
                       stopped_early=state.stopped_early, swa_used=run.swa_iters > 0,
                       completed=stats.completed, final_val_acc=final_acc,
                       images_per_second=ips, seconds=seconds, method=run.method.describe())

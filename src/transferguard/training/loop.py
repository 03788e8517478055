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
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n:
            self.order = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
            self.epoch += 1
        idx = self.order[self.pos:self.pos + self.batch_size]
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


def _method_fingerprint(method: Any) -> str:
    return json.dumps({"name": method.name, **method.options()}, sort_keys=True, default=str)


def fit(model: TGModel, method: Any, train: Split, val: Split | None, config: TrainConfig, *,
        teacher: TGModel | None = None, on_step: StepHook | None = None) -> TrainResult:
    """Train ``model`` (already :meth:`~TransferMethod.prepare`-d) with ``method`` on ``train``.

    ``val`` drives early stopping and best-weight selection (None or empty: keep the last
    weights). ``teacher`` (the frozen source model) is required when ``method.needs_teacher``.
    Returns a :class:`TrainResult`; the model is trained in place and returned in eval mode.
    """
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

    main_total = config.total_iterations(len(train))
    swa_cfg = config.swa if config.swa is not None else (SWAConfig() if method.swa else None)
    swa_iters, swa_lr, swa_every = swa_cfg.resolve(main_total, config.lr) if swa_cfg else (0, 0.0, 1)
    per_epoch = config.iterations_per_epoch(len(train))
    eval_every = config.eval_every or per_epoch
    adv = config.adv_train
    if adv is not None:
        from ..attacks import pgd  # lazy: attacks depend on models only, not on training

    def make_optimizer(lr: float) -> torch.optim.Optimizer:
        groups = method.parameter_groups(model, config)
        if not groups:
            raise ConfigError(f"method {method.name!r} left no trainable parameter")
        for g in groups:
            g["lr"] = lr
        return torch.optim.SGD(groups, lr=lr, momentum=config.momentum)

    optimizer = make_optimizer(config.lr)
    batches = _Batches(len(train), config.batch_size, config.seed)
    adv_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    st: dict[str, Any] = {
        "phase": "main", "iteration": 0, "main_end": main_total, "best_acc": None,
        "best_iter": None, "bad_evals": 0, "stopped_early": False, "history": [],
        "loss_sum": 0.0, "loss_count": 0,
    }
    best_state: dict[str, torch.Tensor] | None = None
    swa_model: AveragedModel | None = None
    ckpt_path = Path(config.checkpoint_path) if config.checkpoint_path else None

    def enter_swa() -> None:
        nonlocal optimizer, swa_model
        if best_state is not None:
            model.load_state_dict(best_state)
        optimizer = make_optimizer(swa_lr)
        swa_model = AveragedModel(model)
        st["phase"] = "swa"

    resumed = ckpt_path is not None and ckpt_path.exists()
    if resumed:
        ck = load_state(ckpt_path)
        if ck["config"] != config.fingerprint() or ck["method"] != _method_fingerprint(method):
            raise CheckpointError(f"{ckpt_path} was written by a different training config or "
                                  "method; delete it to start over")
        model.load_state_dict(ck["model"])
        method.load_state_dict(ck["method_state"])
        for k in st:
            st[k] = ck[k]
        best_state = ck["best_state"]
        if st["phase"] == "swa":
            optimizer = make_optimizer(swa_lr)
            swa_model = AveragedModel(model)
            swa_model.load_state_dict(ck["swa_model"])
        optimizer.load_state_dict(ck["optimizer"])
        batches.load_state_dict(ck["data"])
        adv_gen.set_state(ck["adv_gen"])
        log.info("%s: resumed from %s at iteration %d", config.desc, ckpt_path, st["iteration"])
    method.setup(model, teacher, train, device)  # a no-op when its state came from the checkpoint
    if resumed:
        torch.set_rng_state(ck["rng_cpu"])
        if ck["rng_cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ck["rng_cuda"])
    else:
        torch.manual_seed(config.seed)

    def save() -> None:
        if ckpt_path is None:
            return
        save_state(ckpt_path, {
            "format": STATE_FORMAT, "config": config.fingerprint(),
            "method": _method_fingerprint(method), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "method_state": method.state_dict(),
            **{k: v for k, v in st.items()}, "best_state": best_state,
            "swa_model": swa_model.state_dict() if swa_model is not None else None,
            "data": batches.state_dict(), "adv_gen": adv_gen.get_state(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        })

    def end() -> int:
        return st["main_end"] + swa_iters

    completed = True
    calls = 0
    step_seconds = 0.0
    images = 0
    t0 = time.perf_counter()
    bar = progress_bar(total=end(), initial=st["iteration"], desc=config.desc,
                       disable=not config.progress)
    try:
        while st["iteration"] < end():
            if config.max_iterations_this_call is not None and calls >= config.max_iterations_this_call:
                completed = False
                break
            t = st["iteration"]
            if t >= st["main_end"] and st["phase"] == "main":
                enter_swa()
            phase = st["phase"]
            lr = (config.lr * lr_factor(config.schedule, t, st["main_end"]) if phase == "main"
                  else swa_lr)
            for g in optimizer.param_groups:
                g["lr"] = lr

            s0 = time.perf_counter()
            idx = batches.next()
            x = to_float(train.x[idx], device)
            y = train.y[idx].to(device)
            if adv is not None:
                x_adv = pgd(model, x, y, adv.eps, steps=adv.steps,
                            step_size=adv.resolved_step_size(), random_start=adv.random_start,
                            generator=adv_gen)
                x, y = (torch.cat([x, x_adv]), torch.cat([y, y])) if adv.mode == "mix" else (x_adv, y)
            method.train_mode(model)
            stage_outs, feats = model.forward_stages(x)
            loss = F.cross_entropy(model.head(feats), y)
            teacher_outs = None
            if teacher is not None:
                with torch.no_grad():
                    teacher_outs, _ = teacher.forward_stages(x)
            loss = loss + method.regularizer(model, x, stage_outs, feats, teacher_outs)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = float(loss.detach())
            step_seconds += time.perf_counter() - s0
            images += len(x)

            t += 1
            calls += 1
            st["iteration"] = t
            st["loss_sum"] += loss_value
            st["loss_count"] += 1
            if phase == "swa" and (t - st["main_end"]) % swa_every == 0:
                swa_model.update_parameters(model)
            bar.update(1)
            if on_step is not None and on_step(t, phase, model):
                completed = False
                break
            if t % eval_every == 0 or t == st["main_end"] or t == end():
                _evaluate_step(model, val, config, st, t, lr, per_epoch, bar)
                if phase == "main" and val is not None:
                    acc = st["history"][-1]["val_acc"]
                    if st["best_acc"] is None or acc > st["best_acc"]:
                        st["best_acc"], st["best_iter"], st["bad_evals"] = acc, t, 0
                        best_state = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
                    else:
                        st["bad_evals"] += 1
                        if config.patience is not None and st["bad_evals"] >= config.patience:
                            log.info("%s: early stop at iteration %d (best %.4f at %d)",
                                     config.desc, t, st["best_acc"], st["best_iter"])
                            st["stopped_early"] = True
                            st["main_end"] = t
                            bar.total = end()
                save()
    finally:
        bar.close()

    final_acc = None
    swa_used = swa_iters > 0
    if completed:
        if swa_model is not None:
            _finish_swa(model, swa_model, method, train, config, swa_cfg, device)
        elif best_state is not None:
            model.load_state_dict(best_state)
        if val is not None:
            final_acc = evaluate(model, val, config.eval_batch_size, device)
            if swa_model is not None:
                st["history"].append({"iteration": st["iteration"], "epoch": st["iteration"] / per_epoch,
                                      "train_loss": None, "val_acc": final_acc, "lr": swa_lr,
                                      "phase": "swa-final"})
    model.eval()
    seconds = time.perf_counter() - t0
    ips = images / step_seconds if step_seconds > 0 else 0.0
    log.info("%s: %d iterations this call, %.0f img/s, best val %s", config.desc, calls, ips,
             st["best_acc"])
    return TrainResult(model=model, history=st["history"], best_val_acc=st["best_acc"],
                       best_iteration=st["best_iter"], iterations_run=st["iteration"],
                       stopped_early=st["stopped_early"], swa_used=swa_used, completed=completed,
                       final_val_acc=final_acc, images_per_second=ips, seconds=seconds,
                       method=method.describe())


def _evaluate_step(model: TGModel, val: Split | None, config: TrainConfig, st: dict[str, Any],
                   t: int, lr: float, per_epoch: int, bar: Any) -> None:
    acc = evaluate(model, val, config.eval_batch_size) if val is not None else None
    loss = st["loss_sum"] / max(1, st["loss_count"])
    st["loss_sum"], st["loss_count"] = 0.0, 0
    st["history"].append({"iteration": t, "epoch": t / per_epoch, "train_loss": loss,
                          "val_acc": acc, "lr": lr, "phase": st["phase"]})
    bar.set_postfix(loss=f"{loss:.3f}", val=f"{acc:.3f}" if acc is not None else "-")
    log.debug("%s: iteration %d loss %.4f val %s lr %.3g", config.desc, t, loss, acc, lr)


def _finish_swa(model: TGModel, swa_model: AveragedModel, method: Any, train: Split,
                config: TrainConfig, swa_cfg: SWAConfig | None, device: torch.device) -> None:
    """Copy the averaged parameters into ``model`` and re-estimate BN statistics."""
    with torch.no_grad():
        for p, p_avg in zip(model.parameters(), swa_model.module.parameters(), strict=True):
            p.copy_(p_avg)
    if swa_cfg is not None and swa_cfg.bn_update and method.updates_bn_stats:
        loader = (x for x, _ in train.batches(config.batch_size, device=device))
        update_bn(loader, model, device=device)
    log.info("%s: SWA of %d snapshots applied", config.desc, int(swa_model.n_averaged))

"""``train`` group: optimizer steps/s of ``transferguard.training.fit`` against a bare loop.

``ft``, ``delta`` and the Renofeation main stage against a bare SGD loop of identical math (DTN
32×32 batch 128 and EfficientNet-Lite0 64×64 batch 32; final weights are checked to be
bit-identical), and the Renofeation/fine-tune step-cost ratio.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from harness import Row, Settings, interleaved, make_model, med, paired_ratio


def bare_train(model: Any, teacher: Any | None, lambda_feat: float, train: Any, steps: int,
               batch_size: int, lr: float, wd: float, head_wd: float, momentum: float,
               seed: int, channels_last: bool) -> None:
    """Plain SGD loop of the same math as ``fit``'s main stage (same data order and seeds).

    ``channels_last``: models and batches in channels-last memory, as ``fit`` does on the CPU for
    architectures that declare it (``TGModel.channels_last_cpu``).
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for m in (model, teacher):
        if m is not None:
            m.to(memory_format=fmt)
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
        x = train.x[idx].float().div_(255.0).contiguous(memory_format=fmt)
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
    for m in (model, teacher):
        if m is not None:
            m.to(memory_format=torch.contiguous_format)


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

    def bare(channels_last: bool = base.channels_last_cpu) -> Callable[[], None]:
        model = copy.deepcopy(base)
        trained["bare"] = model
        return lambda: bare_train(model, teacher, lam, train, steps, batch, cfg.lr,
                                  cfg.weight_decay, head_wd, cfg.momentum, cfg.seed,
                                  channels_last)

    return ours, bare, trained


def _train_case(arch: str, method_name: str, size: int, batch: int, steps: int,
                reps: int, warmup: int) -> tuple[dict[str, list[dict[str, float]]], bool]:
    ours, bare, trained = _fit_setup(arch, method_name, size, batch, steps)
    runs = interleaved({"ours": ours, "bare": bare}, reps, warmup)
    a, b = trained["ours"].state_dict(), trained["bare"].state_dict()
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return runs, same


def run(s: Settings) -> list[Row]:
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
        rows.append(_layout_row(arch, size, batch, steps, label, s))
    # WRN-16-2 (paper 1's Figure 9 offline): the layout row only
    rows.append(_layout_row("wrn-16-2", 32, s.wrn_batch, s.wrn_steps, "WRN-16-2", s))
    return rows


def _layout_row(arch: str, size: int, batch: int, steps: int, label: str, s: Settings) -> Row:
    """The channels-last vs contiguous row alone (the bare loop in both layouts, interleaved)."""
    _, bare, _ = _fit_setup(arch, "ft", size, batch, steps)
    runs = interleaved({"cl": functools.partial(bare, True),
                        "contig": functools.partial(bare, False)}, s.train_reps, s.warmup)
    return Row(
        f"train {label} ft: channels-last vs contiguous memory (CPU)", steps / med(runs["cl"]),
        steps / med(runs["contig"]), "steps/s", paired_ratio(runs["contig"], runs["cl"]),
        ">=", None, "contiguous (NCHW) bare loop",
        f"bare loop, both layouts interleaved; fit uses channels-last on the CPU: "
        f"{make_model(arch, seed=0).channels_last_cpu}")

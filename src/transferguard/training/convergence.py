"""Did a training run converge? The plateau flag every trained model records.

A fixed or early-stopped budget can end while validation accuracy is still climbing; a claim that
rests on such a model measures an unfinished network. :func:`plateaued` reads the run's history
(one row per validation) and answers with a rule fixed here, before any run:

the model **plateaued** when the best validation accuracy of the last quarter of the main stage
exceeds the best before it by at most one point, or by one validation image when the validation
split is so small that one image is worth more (ten images: ten points). A model whose best
validation accuracy is 100 % has plateaued whatever came before: it cannot improve.

A claim rests on more than the model it measures: on its ancestors (the source a fine-tuned model
started from, a CommonInit model's Domain C) and on the model a transfer attack was crafted on.
:func:`converged` reads the flag of a finished model's sidecar and :func:`unfinished` names the
models of such a lineage that were still improving.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: The closing share of the main stage's iterations that is compared with what came before.
WINDOW = 0.25
#: The largest gain (fraction of accuracy) in that window that still counts as a plateau.
GAIN = 0.01
#: A best validation accuracy at or above this has nothing left to gain (all images right).
CEILING = 1.0 - 1e-9


def plateaued(history: Sequence[dict[str, Any]], n_val: int | None = None) -> bool | None:
    """True when validation accuracy levelled off (see the module doc); None when the history
    has too few validations to tell (no validation split, or none before the last quarter)."""
    evals = [(h["iteration"], h["val_acc"]) for h in history
             if h.get("val_acc") is not None and h.get("phase", "main") == "main"]
    if len(evals) < 2:
        return None
    cutoff = (1 - WINDOW) * max(it for it, _ in evals)
    before = [acc for it, acc in evals if it <= cutoff]
    if not before:
        return None
    best = max(acc for _, acc in evals)
    if best >= CEILING:
        return True
    tolerance = max(GAIN, 1 / n_val) if n_val else GAIN
    return best - max(before) <= tolerance + 1e-12


def converged(meta: Mapping[str, Any]) -> bool | None:
    """The plateau flag of a finished model's sidecar; True at a perfect validation score also for
    a sidecar written before that clause of :func:`plateaued`; None when unknown (a public
    pre-trained model, no validation split)."""
    best = meta.get("best_val_acc")
    if best is not None and float(best) >= CEILING:
        return True
    flag = meta.get("plateaued")
    return None if flag is None else bool(flag)


def unfinished(metas: Iterable[Mapping[str, Any]]) -> str:
    """The labels of the models among ``metas`` that were still improving when their budgets
    ended, sorted and joined by "; " ("" when none): the ``upstream_unfinished`` column."""
    return "; ".join(sorted({str(m.get("label") or m.get("key")) for m in metas
                             if converged(m) is False}))

"""Did a training run converge? The plateau flag every trained model records.

A fixed or early-stopped budget can end while validation accuracy is still climbing; a claim that
rests on such a model measures an unfinished network. :func:`plateaued` reads the run's history
(one row per validation) and answers with a rule fixed here, before any run:

the model **plateaued** when the best validation accuracy of the last quarter of the main stage
exceeds the best before it by at most one point, or by one validation image when the validation
split is so small that one image is worth more (ten images: ten points).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The closing share of the main stage's iterations that is compared with what came before.
WINDOW = 0.25
#: The largest gain (fraction of accuracy) in that window that still counts as a plateau.
GAIN = 0.01


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
    tolerance = max(GAIN, 1 / n_val) if n_val else GAIN
    return max(acc for _, acc in evals) - max(before) <= tolerance + 1e-12

"""The results layer: what a row of ``results.csv`` / ``findings.csv`` is called, and its writer.

One place owns the table formats every producer (paper-1 and paper-2 grids, ``transferguard
attack``, ``transferguard audit``) writes and every report reads:

* :data:`RESULT_COLUMNS` and :data:`FINDING_COLUMNS`, the leading columns of the two tables;
* attack names: ``NAME-white`` (crafted on the evaluated model itself), ``NAME-transfer``
  (crafted on the source, paper 1's Model A), built only by :func:`attack_name`; the special
  rows :data:`CLEAN` (``"none"``: no attack) and :data:`NOISE` (``"noise"``: the uniform-noise
  control of the same ε); paper 2's :data:`PAPER2_FEATURE` (``"feature"``: the paper's own
  single-neuron feature attack, crafted on the source);
* :class:`Metric`, the metric names;
* :func:`normalise_attack_names`, which maps the legacy names of older tables and cached
  evaluation units (paper 1's ``fgsm-black``) to today's;
* :func:`results_frame` and :func:`write_results`, the one writer.

Torch-free; pandas is imported inside the functions that need it (``transferguard --help`` and
the registries stay light). Imports only the standard library and :mod:`transferguard._io`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ._io import atomic_write

if TYPE_CHECKING:
    import pandas as pd

#: Columns every results table has, in this order (more may follow).
RESULT_COLUMNS: Final[list[str]] = ["experiment", "task", "method", "arch", "seed", "attack", "eps",
                                    "metric", "value"]
#: Columns of ``findings.csv``: one row per checked claim.
FINDING_COLUMNS: Final[list[str]] = ["experiment", "claim", "verdict", "effect", "ci_low",
                                     "ci_high", "seeds", "n_images"]


class Threat(StrEnum):
    """Which model an attack was crafted on (the suffix of its name)."""

    #: Crafted on the evaluated model itself (white-box).
    WHITE = "white"
    #: Crafted on the source (paper 1's Model A, the audit's public model) and transferred.
    TRANSFER = "transfer"


#: The ``attack`` of rows without an attack (clean accuracy, distances, gradient norms, …).
CLEAN: Final = "none"
#: The ``attack`` of the uniform-noise control (same ε; independent of any model).
NOISE: Final = "noise"
#: Paper 2's own attack: the single-neuron penultimate-feature attack crafted on the source.
#: Kept under its historical name; the suite's feature attack is ``feature-transfer``.
PAPER2_FEATURE: Final = "feature"

#: Old attack names → today's; applied when old rows are read (:func:`normalise_attack_names`).
LEGACY_ATTACK_NAMES: Final[dict[str, str]] = {
    "fgsm-black": "fgsm-transfer",  # paper 1 before issue 12: black-box FGSM crafted on Model A
}


class Metric(StrEnum):
    """The ``metric`` names of the results tables."""

    CLEAN_ACC = "clean_acc"
    #: Correct on clean **and** adversarial input, over all images (paper 1's convention).
    ADV_ACC = "adv_acc"
    #: Accuracy under attack among the clean-correct images.
    ADV_ACC_COND = "adv_acc_cond"
    #: Attack success rate: wrong under attack among the clean-correct images.
    ASR = "asr"
    #: Transferability γ = (a_transfer − a_white) / a_white.
    GAMMA = "gamma"
    N_CORRECT = "n_correct"
    N_FOOLED = "n_fooled"
    N_IMAGES = "n_images"
    N_CLASSES = "n_classes"
    GRAD_NORM = "grad_norm"
    GRAD_NORM_MEAN = "grad_norm_mean"
    GRAD_NORM_MEDIAN = "grad_norm_median"
    GRAD_NORM_P90 = "grad_norm_p90"
    WEIGHT_DISTANCE = "weight_distance"
    FEATURE_DISTANCE = "feature_distance"
    FEATURE_LOSS = "feature_loss"
    VERDICT_EPS = "verdict_eps"


_SUFFIXES: Final = tuple(f"-{t.value}" for t in Threat)


def attack_name(attack: str, threat: Threat | str) -> str:
    """The table name of ``attack`` under ``threat``: ``attack_name("fgsm", Threat.TRANSFER)`` is
    ``"fgsm-transfer"``. A plain ``str`` (never an enum member) so rows stay plain data."""
    threat = Threat(threat)
    attack = str(attack)
    if not attack or attack == CLEAN or attack.endswith(_SUFFIXES):
        raise ValueError(f"not an attack name to qualify: {attack!r}")
    return f"{attack}-{threat.value}"


def parse_attack_name(name: str) -> tuple[str, Threat | None]:
    """``(attack, threat)`` of a table name: ``"pgd-white"`` → ``("pgd", Threat.WHITE)``; names
    without a threat suffix (``none``, ``noise``, ``feature``) give ``(name, None)``. Legacy names
    are not translated here (:func:`normalise_attack_names` does that once, when rows are read)."""
    for threat in Threat:
        base = name.removesuffix(f"-{threat.value}")
        if base != name and base:
            return base, threat
    return name, None


def threat_of(name: str) -> Threat | None:
    """The threat of a table name (None for ``none``, ``noise`` and unsuffixed names)."""
    return parse_attack_name(name)[1]


Table = TypeVar("Table")


def normalise_attack_names(table: Table) -> Table:
    """``table`` (a DataFrame or a list of row dicts) with legacy attack names replaced
    (:data:`LEGACY_ATTACK_NAMES`). The very same object comes back when it holds none, so a caller
    can tell whether a migration happened (``normalised is not table``); otherwise a copy."""
    if isinstance(table, Sequence) and not isinstance(table, str):
        if not any(isinstance(r, Mapping) and r.get("attack") in LEGACY_ATTACK_NAMES for r in table):
            return table
        return [{**r, "attack": LEGACY_ATTACK_NAMES[r["attack"]]}  # type: ignore[return-value]
                if isinstance(r, Mapping) and r.get("attack") in LEGACY_ATTACK_NAMES else r
                for r in table]
    columns = getattr(table, "columns", None)
    if columns is None:
        raise TypeError(f"expected a DataFrame or a list of rows, got {type(table).__name__}")
    if "attack" not in columns:
        return table
    legacy = table["attack"].isin(list(LEGACY_ATTACK_NAMES))  # type: ignore[index]
    if not legacy.any():
        return table
    out = table.copy()  # type: ignore[attr-defined]
    out["attack"] = out["attack"].replace(LEGACY_ATTACK_NAMES)
    return out


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows → DataFrame with the standard columns first."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for c in RESULT_COLUMNS:
        if c not in df.columns:
            df[c] = None
    return df[RESULT_COLUMNS + [c for c in df.columns if c not in RESULT_COLUMNS]]


def write_results(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the results table as CSV, atomically."""
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def findings_frame(experiment: str, findings: Sequence[Any]) -> pd.DataFrame:
    """The findings of one run (:class:`~transferguard.reports.common.Finding` objects) as the
    rows of ``findings.csv``."""
    import pandas as pd

    return pd.DataFrame([{"experiment": experiment, "claim": f.claim, "verdict": f.verdict,
                          "effect": f.effect, "ci_low": f.ci_low, "ci_high": f.ci_high,
                          "seeds": f.seeds, "n_images": f.n_images} for f in findings],
                        columns=FINDING_COLUMNS)

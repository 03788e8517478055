"""``transferguard compare RUN_A RUN_B``: do two runs reach the same verdicts?

Each run is a folder holding ``findings.csv`` (one experiment's run) or an ``all`` folder whose
sub-folders hold one each. Claims are matched by (experiment, claim text). Of the claims decided
(held / did not hold) in both runs, the share that agree is the stability figure; the share that
is inconclusive or not checkable in each run is reported beside it, since a run can be "stable"
by deciding nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from ..results import FINDING_COLUMNS

DECIDED = ("held", "did not hold")


def read_findings(folder: str | Path) -> pd.DataFrame:
    """Every ``findings.csv`` of a run folder (its own, or its experiments' sub-folders)."""
    root = Path(folder)
    files = [root / "findings.csv"] if (root / "findings.csv").is_file() else \
        sorted(root.glob("*/findings.csv"))
    if not files:
        raise ConfigError(f"{root} holds no findings.csv (nor do its sub-folders): run "
                          "`transferguard reproduce` into it first, or rebuild its reports with "
                          "--report-only")
    frames = []
    for f in files:
        try:
            df = pd.read_csv(f)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise ConfigError(f"{f}: unreadable findings table: {exc}") from None
        missing = set(FINDING_COLUMNS) - set(df.columns)
        if missing:
            raise ConfigError(f"{f}: not a findings table (missing {', '.join(sorted(missing))})")
        frames.append(df[FINDING_COLUMNS])
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class Comparison:
    """The verdicts of two runs side by side and the counts a reader needs."""

    table: pd.DataFrame  # experiment, claim, verdict_a, verdict_b (claims present in both)
    only_a: int
    only_b: int

    @property
    def both_decided(self) -> pd.DataFrame:
        t = self.table
        return t[t.verdict_a.isin(DECIDED) & t.verdict_b.isin(DECIDED)]

    @property
    def agree(self) -> int:
        d = self.both_decided
        return int((d.verdict_a == d.verdict_b).sum())

    def undecided_share(self, side: str) -> float:
        col = self.table[f"verdict_{side}"]
        return float((~col.isin(DECIDED)).mean()) if len(col) else float("nan")

    def summary(self) -> str:
        """A few plain lines: agreement among decided claims, undecided shares, the differences."""
        n, d = len(self.table), len(self.both_decided)
        lines = [f"{n} claims in both runs ({self.only_a} only in A, {self.only_b} only in B)."]
        if d:
            lines.append(f"Decided (held / did not hold) in both: {d}; the same verdict in "
                         f"{self.agree} ({100 * self.agree / d:.0f} %).")
        else:
            lines.append("No claim is decided in both runs.")
        lines.append(f"Inconclusive or not checkable: {100 * self.undecided_share('a'):.0f} % of "
                     f"A's, {100 * self.undecided_share('b'):.0f} % of B's.")
        flips = self.both_decided[self.both_decided.verdict_a != self.both_decided.verdict_b]
        for _, r in flips.iterrows():
            lines.append(f"  differs: [{r.experiment}] {r.claim} — A {r.verdict_a}, "
                         f"B {r.verdict_b}")
        return "\n".join(lines)


def compare(run_a: str | Path, run_b: str | Path) -> Comparison:
    """Match the claims of two runs' findings and count where their verdicts agree."""
    a, b = read_findings(run_a), read_findings(run_b)
    key = ["experiment", "claim"]
    merged = a[key + ["verdict"]].merge(b[key + ["verdict"]], on=key, how="outer",
                                        suffixes=("_a", "_b"), indicator=True)
    both = merged[merged["_merge"] == "both"].drop(columns="_merge").reset_index(drop=True)
    return Comparison(both, int((merged["_merge"] == "left_only").sum()),
                      int((merged["_merge"] == "right_only").sum()))

"""``audit`` group (opt-in, ~6 minutes): the default audit's wall time against its budget.

``transferguard audit --budget fast`` of 1,000 DTN-sized images (the ``mnist5k`` test split) at
3 ε, as a user runs it (a fresh process), against the 5-minute budget of 2 CPU cores; and the
cost of ``--budget thorough`` relative to ``fast`` on a small subset (information). Models are
fixed-seed untrained DTNs saved as checkpoints: crafting cost does not depend on the weights.
Not part of a default run: ``python benchmarks/run.py --only audit``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import Row, Settings

#: Not run by default (only with ``--only audit``).
DEFAULT = False
EPS = "4/255,8/255,16/255"


def _checkpoints(tmp: Path) -> tuple[Path, Path]:
    import torch

    from transferguard.models import create_model, save_checkpoint

    paths = []
    for name, seed in (("source", 0), ("target", 1)):
        torch.manual_seed(seed)
        paths.append(save_checkpoint(create_model("dtn", 10), tmp / name, {"classes": None}))
    return paths[0], paths[1]


def _audit(src: Path, tgt: Path, out: Path, budget: str, limit: int | None) -> tuple[float, str]:
    exe = Path(sys.executable).with_name("transferguard")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "transferguard"]
    cmd += ["audit", "--source", str(src), "--target", str(tgt), "--data", "mnist5k",
            "--eps", EPS, "--budget", budget, "--out", str(out), "--quiet", "--device", "cpu"]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    note = "exit 0" if proc.returncode == 0 else \
        f"FAILED exit {proc.returncode}: {proc.stderr.strip()[-200:]}"
    return wall, note


def run(s: Settings) -> list[Row]:
    """Wall time of the default audit (1,000 images × 3 ε) and thorough/fast on a subset."""
    with tempfile.TemporaryDirectory(prefix="tg-bench-audit-") as tmp_name:
        tmp = Path(tmp_name)
        src, tgt = _checkpoints(tmp)
        full, note = _audit(src, tgt, tmp / "fast", "fast", s.audit_images)
        n = s.audit_images or 1000
        rows = [Row(f"audit --budget fast, {n} DTN images × 3 ε: wall time vs 5-minute budget",
                    full, 300.0, "s", full / 300.0, "<=", 1.0 if n >= 1000 else None,
                    "300 s budget", f"transferguard audit --data mnist5k --eps {EPS}; {note}")]
        if "FAILED" in note:
            rows[0].passed = False
        fast, n1 = _audit(src, tgt, tmp / "fast-sub", "fast", s.audit_subset)
        thorough, n2 = _audit(src, tgt, tmp / "thorough-sub", "thorough", s.audit_subset)
        rows.append(Row(f"audit --budget thorough / fast, {s.audit_subset} images × 3 ε (info)",
                        thorough, fast, "s", thorough / fast, "<=", None, "--budget fast",
                        f"{n1}; {n2}"))
    return rows

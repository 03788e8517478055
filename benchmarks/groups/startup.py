"""``startup`` group: seconds from launching ``transferguard`` to its one-line error.

Common error paths (an unknown experiment or domain, a bad ε, a finished ``--out``, a missing
model file) against a 1 s budget, with ``--help`` for reference.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import Row, Settings, median

#: Error paths of the command line (issue: start-up to a one-line error ≤ 1 s).
STARTUP_CASES = {
    "unknown experiment": ["reproduce", "nosuch"],
    "bad ε": ["attack", "--target", "t.safetensors", "--domain", "ucidigits", "--eps", "2"],
    "finished --out folder": ["attack", "--target", "t.safetensors", "--domain", "ucidigits",
                              "--out", "{done}"],
    "unknown domain": ["train", "--domain", "ucidigitz", "--out", "{tmp}/m"],
    "unknown architecture": ["train", "--domain", "ucidigits", "--arch", "resnet-18", "--out",
                             "{tmp}/m"],
    "unknown method": ["train", "--domain", "ucidigits", "--method", "renofeaton", "--out",
                       "{tmp}/m"],
    "missing model file": ["attack", "--target", "{tmp}/none.safetensors", "--domain",
                           "ucidigits", "--out", "{tmp}/a"],
}


def run(s: Settings) -> list[Row]:
    """Seconds from launching ``transferguard`` to its one-line error, against a 1 s budget."""
    exe = Path(sys.executable).with_name("transferguard")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "transferguard"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tg-bench-startup-") as tmp:
        done = Path(tmp) / "done"
        done.mkdir()
        (done / "results.csv").write_text("finished\n")
        for name, argv in {"--help (reference)": ["--help"], **STARTUP_CASES}.items():
            cmd = base + [a.format(tmp=tmp, done=done) for a in argv]
            times, code, lines = [], 0, 0
            for _ in range(max(1, s.reps)):
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                times.append(time.perf_counter() - t0)
                code, lines = proc.returncode, len(proc.stderr.strip().splitlines())
            wall = median(times)
            ok = argv == ["--help"] or (code == 2 and lines == 1)
            row = Row(f"startup: {name} → one line", wall, 1.0, "s", wall / 1.0, "<=",
                      None if argv == ["--help"] else 1.0, "1 s budget",
                      f"exit {code}, {lines} stderr line(s)")
            if not ok:
                row.passed = False
            rows.append(row)
    return rows

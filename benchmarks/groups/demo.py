"""``demo`` group (opt-in, slow): wall time and peak RSS of ``transferguard reproduce demo``.

Runs into a temporary ``--out`` and ``--store``, so it really trains (5-10 minutes). Not part of
a default run: ``python benchmarks/run.py --demo`` or ``--only demo``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import Row, Settings

#: Not run by default (only with ``--demo`` or ``--only demo``).
DEFAULT = False


def run(s: Settings) -> list[Row]:
    """Wall time and peak RSS of ``transferguard reproduce demo`` in fresh temporary folders."""
    exe = Path(sys.executable).with_name("transferguard")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "transferguard.cli"]
    with tempfile.TemporaryDirectory(prefix="tg-bench-demo-") as tmp:
        cmd += ["reproduce", "demo", "--out", f"{tmp}/out", "--store", f"{tmp}/store", "--quiet"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
    peak_gib = usage.ru_maxrss * 1024 / 2**30  # Linux reports kilobytes
    ok = proc.returncode == 0
    note = "exit 0" if ok else f"FAILED exit {proc.returncode}: {err.strip()[-200:]}"
    cmd_text = "transferguard reproduce demo --out TMP --store TMP"
    rows = [Row("demo: wall time vs 10-minute budget", wall, 600.0, "s", wall / 600.0, "<=", 1.0,
                "600 s budget", f"{cmd_text}; {note}"),
            Row("demo: peak RSS vs 4 GiB budget", peak_gib, 4.0, "GiB", peak_gib / 4.0, "<=",
                1.0, "4 GiB budget", "ru_maxrss of the child (os.wait4)")]
    if not ok:
        for row in rows:
            row.passed = False
    return rows

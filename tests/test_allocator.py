"""transferguard._allocator: large buffers are reused from the heap instead of fresh mmaps.

Measured in fresh interpreters (the setting is per process): the minor page faults of a steady
loop that allocates, touches and frees buffers of 3-30 MiB, with and without the tuning.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the malloc thresholds exist on glibc only")

PROBE = """
import resource, sys
import numpy as np
from transferguard._allocator import tune_malloc
applied = tune_malloc() if sys.argv[1] == "tune" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
sizes = [3, 20, 5, 30, 8] * 10  # MiB, all above glibc's default 128 KiB mmap threshold
for s in sizes[:5]:  # warm-up: let glibc's dynamic threshold settle first
    a = np.ones(s * 2**18, dtype=np.float32); del a
f0 = faults()
for s in sizes:
    a = np.ones(s * 2**18, dtype=np.float32); del a
print(applied, faults() - f0)
"""


def _probe(mode: str, env: dict[str, str] | None = None) -> tuple[str, int]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**base, **(env or {})},
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


def test_tuning_removes_page_faults_of_large_buffers() -> None:
    applied, tuned = _probe("tune")
    _, default = _probe("default")
    assert applied == "True"
    # Untuned, every 20/30 MiB buffer is a fresh mapping (~1,000 faults here); tuned, none.
    assert default > 500, default
    assert tuned < default / 10, (tuned, default)


def test_user_settings_win() -> None:
    applied, _ = _probe("tune", {"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert applied == "False"


def test_cli_applies_it() -> None:
    code = ("from unittest import mock\nimport transferguard.cli as cli\n"
            "with mock.patch.object(cli, 'tune_malloc') as t:\n"
            "    cli.main(['reproduce', 'no-such-experiment'])\n"
            "print(t.call_count)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "1"

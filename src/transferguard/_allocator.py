"""Keep large CPU tensors on the heap instead of in fresh ``mmap`` regions (glibc only).

glibc serves every allocation above ``M_MMAP_THRESHOLD`` (128 KiB, raised dynamically as big
blocks are freed) with a fresh ``mmap``, and every page of a fresh mapping is faulted in and
zeroed on first touch. A DTN forward on a batch of 256 images allocates activations of several
MiB, so whether they come from the heap (pages already mapped) or from new mappings depends on
the allocation history of the process. Measured here (``benchmarks/RESULTS.md``): 24 evaluation
forwards took 2.3 s or 2.8 s depending only on that history, and 3.4 s with the threshold pinned
at its default, i.e. up to a third of evaluation time went to page faults. Raising the mmap
threshold to glibc's maximum (32 MiB) and keeping freed heap memory instead of trimming it makes
the fast case the only case. The price is memory the process keeps instead of handing back to the
system: the demo's peak RSS went from 1.27 to 1.39–1.42 GiB (its wall time from 233 to 227 s; it
is mostly training, which gains little).

The command line applies this at start-up (:func:`tune_malloc`); a library user may call it too.
Nothing happens on other C libraries or when the user set ``MALLOC_*_`` / ``GLIBC_TUNABLES``
variables themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc's largest accepted mmap threshold on 64-bit systems (HEAP_MAX_SIZE / 2).
MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the top of the heap kept for reuse instead of being returned to the system.
TRIM_THRESHOLD = 2**30

_applied: bool | None = None


def _user_configured() -> bool:
    return "GLIBC_TUNABLES" in os.environ or any(
        k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"))


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux") or _user_configured():
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        gnu_get_libc_version = libc.gnu_get_libc_version  # absent outside glibc (e.g. musl)
    except (OSError, AttributeError):
        return False
    gnu_get_libc_version.restype = ctypes.c_char_p
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _applied = ok
    log.debug("glibc %s malloc thresholds %s", gnu_get_libc_version().decode(),
              "raised" if ok else "left unchanged (mallopt refused)")
    return ok

"""On-disk cache of preprocessed domains: uncompressed ``.npz`` files keyed by name and parameters.

Decoding thousands of JPEGs or rendering synthetic digits is slow; a second load of the same
domain at the same size should be a memory copy. Files are written atomically, so an interrupted
run never leaves a half-written cache entry, and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write

log = logging.getLogger(__name__)

#: Bump when the preprocessing changes so that stale cache entries are not reused.
CACHE_VERSION = 1


def cache_root() -> Path:
    """``$TRANSFERGUARD_CACHE`` or ``~/.cache/transferguard``."""
    env = os.environ.get("TRANSFERGUARD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "transferguard"


def cache_path(kind: str, name: str, params: dict[str, Any]) -> Path:
    """Path of the cache entry for ``name`` with ``params`` (a hash of both plus the version)."""
    blob = json.dumps({"name": name, "params": params, "version": CACHE_VERSION},
                      sort_keys=True, default=str)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:16]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:48]
    return cache_root() / kind / f"{safe}-{digest}.npz"


def save_arrays(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write ``arrays`` plus a JSON ``meta`` entry to ``path`` atomically (uncompressed npz)."""

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, __meta__=np.array(json.dumps(meta, default=str)), **arrays)
            fh.flush()
            os.fsync(fh.fileno())

    try:
        atomic_write(path, _write)
    except OSError as exc:  # a read-only or full cache must not break loading
        log.warning("could not write cache file %s: %s", path, exc)
    return path


def load_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """Read a cache entry; ``None`` when absent or unreadable (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files if k != "__meta__"}
            meta = json.loads(str(npz["__meta__"])) if "__meta__" in npz.files else {}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        log.warning("ignoring unreadable cache file %s: %s", path, exc)
        return None
    return arrays, meta

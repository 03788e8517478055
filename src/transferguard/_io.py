"""Atomic file writes: a finished result is never half-written, whatever interrupts us."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from .errors import ConfigError


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path`` atomically.

    If anything fails (a full disk, a permission error, an interrupt) the temporary file is
    removed and the error re-raised: ``path`` is either the old file or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):  # never mask the original error
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, _write)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def output_folder(given: str | None, default: str, overwrite: bool,
                  marker: str = "results.csv") -> Path:
    """Where a command writes its results, never over finished ones without ``--overwrite``.

    An explicit ``--out`` that already holds ``marker`` is refused unless ``overwrite``; with no
    ``--out`` the first free folder of ``default``, ``default-2``, ``default-3`` … is used.
    """
    if given is not None:
        out = Path(given).expanduser()
        if (out / marker).exists() and not overwrite:
            raise ConfigError(f"{out} already holds results ({marker}); pass --overwrite to "
                              "replace them, or choose another --out")
        return out
    out, n = Path(default), 1
    while (out / marker).exists():
        n += 1
        out = Path(f"{default}-{n}")
    return out

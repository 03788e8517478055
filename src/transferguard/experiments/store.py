"""The on-disk cache of finished work: trained models and evaluation rows, keyed by spec hash.

Layout under the store root::

    models/<key>.safetensors + <key>.json   finished checkpoints (safetensors + JSON sidecar)
    partial/<key>-<trial>.pt                resumable training state of an unfinished model
    evals/<key>.json                        rows of a finished evaluation unit (+ their checksum)
    crafted/<key>.safetensors               adversarial batches (+ a checksum in the header)
    locks/<name>.lock                       per-entry locks (``fcntl.flock``), never deleted
    corrupt/                                unreadable entries moved aside for inspection

Faults it survives: every entry is written atomically (a killed run leaves at most an ignored
``.*.tmp`` file), checksummed where the format allows, and an entry that fails to read is moved to
``corrupt/`` and recomputed. Work on one entry is serialised across processes by its lock, so two
runs on one store compute each entry once; a dead process's lock is released by the OS. A failed
write (full disk, read-only store) leaves no half entry and surfaces as one :class:`StoreError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .._io import atomic_write, atomic_write_json
from ..errors import StoreError

try:
    import fcntl
except ImportError:  # Windows: no cross-process locking (one run per store)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


def default_store_root() -> Path:
    """``$TRANSFERGUARD_STORE`` or ``~/.cache/transferguard/store``."""
    env = os.environ.get("TRANSFERGUARD_STORE")
    if env:
        return Path(env)
    cache = Path(os.environ.get("TRANSFERGUARD_CACHE", Path.home() / ".cache" / "transferguard"))
    return cache / "store"


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Checksum of a ``{name: tensor}`` dict: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def rows_sha256(rows: Any) -> str:
    """Checksum of evaluation rows in their JSON form (stable across a write/read round trip)."""
    text = json.dumps(json.loads(json.dumps(rows, default=str)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Store:
    """A directory of cached models and evaluations."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_root()
        with self.writing():
            for sub in ("models", "partial", "evals", "crafted"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)

    # faults
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Turn an OS error raised while writing the store into one :class:`StoreError`."""
        try:
            yield
        except OSError as err:
            reason = (err.strerror or str(err) or type(err).__name__).lower()
            raise StoreError(f"cannot write to the store {self.root}: {reason}") from err

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the exclusive lock ``locks/<name>.lock`` while computing one entry.

        ``flock`` locks belong to the open file: the OS releases them when the process dies, so a
        killed run never leaves a lock behind. Callers re-check the entry once they hold it.
        """
        path = self.root / "locks" / f"{name}.lock"
        with self.writing():
            path.parent.mkdir(exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("waiting for another process working on %s", name)
                    fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def discard(self, *paths: Path, reason: str = "") -> None:
        """Move unusable entries to ``corrupt/`` (kept for inspection, never read again)."""
        with self.writing():
            for path in paths:
                if path.exists():
                    (self.root / "corrupt").mkdir(exist_ok=True)
                    log.warning("moving unusable store entry %s to corrupt/: %s", path, reason)
                    with suppress(FileNotFoundError):
                        os.replace(path, self.root / "corrupt" / path.name)

    # models
    def model_path(self, key: str) -> Path:
        """Checkpoint stem (``.safetensors`` / ``.json`` are appended by the checkpoint I/O)."""
        return self.root / "models" / key

    def model_files(self, key: str) -> tuple[Path, Path]:
        """The weights and sidecar files of a stored model."""
        stem = self.model_path(key)
        return stem.with_suffix(".safetensors"), stem.with_suffix(".json")

    def has_model(self, key: str) -> bool:
        return all(p.exists() for p in self.model_files(key))

    def partial_path(self, key: str) -> Path:
        return self.root / "partial" / f"{key}.pt"

    # crafted adversarial batches
    def crafted_path(self, key: str) -> Path:
        return self.root / "crafted" / f"{key}.safetensors"

    def get_crafted(self, key: str, *, discard: bool = False) -> dict[str, torch.Tensor] | None:
        """The stored batch, or None when absent or unreadable (moved aside with ``discard``)."""
        path = self.crafted_path(key)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt") as fh:
                expected = (fh.metadata() or {}).get("sha256")
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - not a dict
            if expected is not None and expected != tensors_sha256(tensors):
                raise ValueError("checksum mismatch")
            return tensors
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            if discard:
                self.discard(path, reason=f"unreadable crafted batch ({err})")
            return None

    def put_crafted(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        meta = {"sha256": tensors_sha256(data)}
        with self.writing():
            atomic_write(self.crafted_path(key), lambda tmp: save_file(data, tmp, metadata=meta))

    # evaluations
    def eval_path(self, key: str) -> Path:
        return self.root / "evals" / f"{key}.json"

    def get_eval(self, key: str, *, discard: bool = False) -> list[dict[str, Any]] | None:
        """The stored rows, or None when absent or unreadable (moved aside with ``discard``)."""
        path = self.eval_path(key)
        if not path.exists():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            rows = entry["rows"]
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ValueError("rows are not a list of objects")
            if "sha256" in entry and entry["sha256"] != rows_sha256(rows):
                raise ValueError("checksum mismatch")
            return rows
        except (OSError, ValueError, KeyError, TypeError) as err:
            if discard:
                self.discard(path, reason=f"unreadable cached evaluation ({err})")
            return None

    def put_eval(self, key: str, spec: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        with self.writing():
            atomic_write_json(self.eval_path(key),
                              {"spec": spec, "rows": rows, "sha256": rows_sha256(rows)})

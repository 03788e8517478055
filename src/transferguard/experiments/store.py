"""The on-disk cache of finished work: trained models and evaluation rows, keyed by spec hash.

Layout under the store root::

    models/<key>.safetensors + <key>.json   finished checkpoints (safetensors + JSON sidecar)
    partial/<key>.pt                        resumable training state of an unfinished model
    evals/<key>.json                        rows of a finished evaluation unit
    crafted/<key>.safetensors               adversarial batches (crafted once, evaluated on many)

Everything is written atomically, so a killed run never leaves a half-written result that a
later run would trust.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .._io import atomic_write, atomic_write_json

log = logging.getLogger(__name__)


def default_store_root() -> Path:
    """``$TRANSFERGUARD_STORE`` or ``~/.cache/transferguard/store``."""
    env = os.environ.get("TRANSFERGUARD_STORE")
    if env:
        return Path(env)
    cache = Path(os.environ.get("TRANSFERGUARD_CACHE", Path.home() / ".cache" / "transferguard"))
    return cache / "store"


class Store:
    """A directory of cached models and evaluations."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_root()
        for sub in ("models", "partial", "evals", "crafted"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # models
    def model_path(self, key: str) -> Path:
        """Checkpoint stem (``.safetensors`` / ``.json`` are appended by the checkpoint I/O)."""
        return self.root / "models" / key

    def has_model(self, key: str) -> bool:
        stem = self.model_path(key)
        return stem.with_suffix(".safetensors").exists() and stem.with_suffix(".json").exists()

    def partial_path(self, key: str) -> Path:
        return self.root / "partial" / f"{key}.pt"

    # crafted adversarial batches
    def crafted_path(self, key: str) -> Path:
        return self.root / "crafted" / f"{key}.safetensors"

    def get_crafted(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self.crafted_path(key)
        if not path.exists():
            return None
        try:
            return load_file(str(path))
        except Exception:  # a corrupt cache entry is recomputed, never trusted
            log.warning("ignoring unreadable crafted batch %s", path)
            return None

    def put_crafted(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        atomic_write(self.crafted_path(key), lambda tmp: save_file(data, tmp))

    # evaluations
    def eval_path(self, key: str) -> Path:
        return self.root / "evals" / f"{key}.json"

    def get_eval(self, key: str) -> list[dict[str, Any]] | None:
        path = self.eval_path(key)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())["rows"]
        except (json.JSONDecodeError, KeyError):
            log.warning("ignoring unreadable cached evaluation %s", path)
            return None

    def put_eval(self, key: str, spec: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        atomic_write_json(self.eval_path(key), {"spec": spec, "rows": rows})

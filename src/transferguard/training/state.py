"""Resumable training state: saved atomically, loaded with ``torch.load(weights_only=True)``.

The file holds only tensors and plain Python containers (RNG states are tensors), so loading it
never unpickles arbitrary objects. It is our own intermediate state, not a model for exchange
(finished models go through :func:`transferguard.models.save_checkpoint`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write
from ..errors import CheckpointError


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file in the same directory, then ``os.replace``."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Load a state written by :func:`save_state` (tensors and containers only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file or a file that needs unpickling
        raise CheckpointError(f"cannot read training state {path}: {err}") from err
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a transferguard training state")
    return state


STATE_FORMAT = "transferguard-train-state-1"

"""Small shared helpers: device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return ``cuda`` when asked for ``auto`` and a GPU is present, else the named device."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)

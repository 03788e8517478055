"""Small shared helpers: device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch

from .errors import ConfigError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The device to run on: ``auto`` is the GPU when present, else the CPU; ``gpu`` means ``cuda``.

    A device that does not exist on this machine (``cuda`` without a GPU, ``cuda:3`` on a
    one-GPU machine, a misspelt name) is a :class:`ConfigError`, so the CLI says so in one line.
    """
    text = "auto" if device is None else str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "gpu" or text.startswith("gpu:"):
        text = "cuda" + text[3:]
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {device!r}: this machine has no usable CUDA GPU; use "
                              "--device cpu (or auto, which picks the GPU only when present)")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {device!r}: this machine has {count} CUDA GPU(s) "
                              f"(cuda:0 … cuda:{count - 1})")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ConfigError(f"device {device!r}: Apple MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ConfigError(f"device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)

"""Seeded, stratified index selection: per-class subsampling and hold-out splits."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError


def subsample_per_class(y: torch.Tensor, n: int | None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of exactly ``n`` random examples of every class in ``y`` (sorted ascending).

    ``n=None`` keeps everything. The draw depends only on ``y``, ``n`` and the generator state,
    so a seeded generator gives the same subset every time. Asking for more examples than a class
    has raises :class:`ConfigError` naming the class.
    """
    y = torch.as_tensor(y).long()
    if n is None:
        return torch.arange(len(y))
    if int(n) != n or n < 1:
        raise ConfigError(f"examples per class must be a positive integer, got {n!r}")
    picked = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        if len(idx) < n:
            raise ConfigError(f"class {c} has only {len(idx)} examples; cannot draw {n} per class")
        picked.append(idx[torch.randperm(len(idx), generator=generator)[:n]])
    if not picked:
        return torch.zeros(0, dtype=torch.long)
    return torch.sort(torch.cat(picked)).values


def stratified_split(y: torch.Tensor, fraction: float,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (kept, held_out) with ``round(fraction·n_c)`` held out per class.

    A class with at least two examples gives at least one to the held-out part when
    ``fraction > 0`` and always keeps at least one; both index tensors are sorted.
    """
    y = torch.as_tensor(y).long()
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"split fraction must be in [0, 1), got {fraction}")
    keep, held = [], []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        k = int(round(fraction * len(idx)))
        if fraction > 0 and k == 0 and len(idx) >= 2:
            k = 1
        k = min(k, len(idx) - 1) if len(idx) > 0 else 0
        held.append(idx[:k])
        keep.append(idx[k:])
    empty = torch.zeros(0, dtype=torch.long)
    keep_t = torch.sort(torch.cat(keep)).values if keep else empty
    held_t = torch.sort(torch.cat(held)).values if held else empty
    return keep_t, held_t


def holdout_numpy(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`stratified_split` on a NumPy label array with a fixed seed (for fixed test splits)."""
    g = torch.Generator().manual_seed(seed)
    keep, held = stratified_split(torch.from_numpy(np.asarray(y, dtype=np.int64)), fraction, g)
    return keep.numpy(), held.numpy()

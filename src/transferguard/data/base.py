"""Core data containers: a split of uint8 images and a named domain with train/val/test splits.

Images are stored as ``uint8`` tensors of shape (N, 3, H, W) to keep large domains small in memory
and on disk; :meth:`Split.images` and :meth:`Split.batches` hand out float tensors in [0, 1],
the only form a model ever sees.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch


@dataclass
class Split:
    """Images ``x`` (uint8, N×3×H×W) and integer labels ``y`` (int64, N)."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8:
            raise TypeError(f"Split.x must be uint8, got {self.x.dtype}")
        if self.x.ndim != 4 or self.x.shape[1] != 3:
            raise ValueError(f"Split.x must be N×3×H×W, got {tuple(self.x.shape)}")
        self.y = self.y.long()
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} images but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def images(self, device: torch.device | str | None = None) -> torch.Tensor:
        """All images as float32 in [0, 1]."""
        return to_float(self.x, device)

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.x[index], self.y[index])

    def batches(self, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None,
                device: torch.device | str | None = None,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x float in [0,1], y)`` mini-batches, optionally shuffled with ``generator``."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - (n % batch_size) if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield to_float(self.x[idx], device), self.y[idx].to(device) if device else self.y[idx]


def to_float(x: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 images → float32 in [0, 1] (on ``device`` when given)."""
    if device is not None:
        x = x.to(device, non_blocking=True)
    return x.float().div_(255.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float images in [0, 1] → uint8 (rounded, clamped)."""
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8)


@dataclass
class Domain:
    """A named classification domain with seeded train / validation / test splits."""

    name: str
    classes: list[str]
    train: Split
    val: Split
    test: Split
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.train.x.shape[-1])

    def digest(self) -> str:
        """sha256 of the class names and every split's images and labels.

        A model's store key names its data by recipe (domain, sizes, seeds); this names the
        bytes the recipe gave on this machine, so a stored model trained on other bytes (another
        font set for SynDigits, another copy of a dataset) can be told apart.
        """
        h = hashlib.sha256("\x1f".join(self.classes).encode())
        for split in (self.train, self.val, self.test):
            for t in (split.x, split.y):
                h.update(str(tuple(t.shape)).encode())
                h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()

"""The model interface every architecture implements.

A :class:`TGModel` takes images in [0, 1] and owns its normalisation, so attacks and metrics work
in pixel space. Its layout is fixed so that methods and attacks need no per-architecture code::

    x ─► normalize ─► stem ─► stages[0] ─► drop[0] ─► … ─► stages[-1] ─► drop[-1] ─► neck ─► head
                                   └─ stage outputs (DELTA / Renofeation) ─┘        └ penultimate

``neck`` maps the last stage's output to the penultimate feature vector (pooling, flattening and,
for DTN, the hidden fully connected layer); ``head`` is the final ``nn.Linear``. Spatial dropout
(``Dropout2d``) after each stage is off (``Identity``) unless :meth:`set_spatial_dropout` turns it on.
Stage outputs are taken *after* the dropout, so feature distillation matches dropped features, as
Renofeation intends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` for inputs in [0, 1]; stored as buffers (moves with .to)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"




class TGModel(nn.Module):
    """Base class: a classifier on [0, 1] images with named stages and penultimate features.

    Subclasses build ``normalize``, ``stem``, ``stages``, ``neck`` and ``head`` and call
    :meth:`_finish` at the end of ``__init__``; everything else is shared.
    """

    arch: str = "base"
    #: Side length of the square input the architecture expects (informational; CNNs pool).
    input_size: int = 32
    #: Train in channels-last memory on the CPU too (not only under bf16 on CUDA): set where it
    #: is faster (`benchmarks/` group ``train``: EfficientNet-Lite0 1.56×, the DTN 1.02×, so
    #: not the DTN; WRN-16-2 ≈ 1.3× in a one-off timing, its row not yet run quiet). The weights
    #: are handed back contiguous.
    channels_last_cpu: bool = False

    normalize: nn.Module
    stem: nn.Module
    stages: nn.ModuleList
    neck: nn.Module
    head: nn.Linear

    def _finish(self, stage_names: Sequence[str]) -> None:
        if len(stage_names) != len(self.stages):
            raise ValueError("one name per stage is required")
        self.stage_names: tuple[str, ...] = tuple(stage_names)
        self.drop = nn.ModuleList(nn.Identity() for _ in self.stages)
        self.spatial_dropout = 0.0

    # ----------------------------------------------------------------- structure
    @property
    def num_classes(self) -> int:
        return self.head.out_features

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def set_spatial_dropout(self, p: float) -> None:
        """Put ``Dropout2d(p)`` after every stage (``p = 0`` removes it)."""
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.spatial_dropout = float(p)
        for i in range(len(self.drop)):
            self.drop[i] = nn.Dropout2d(p) if p > 0 else nn.Identity()

    def reset_head(self, num_classes: int | None = None) -> None:
        """Replace the head by a freshly initialised ``Linear`` (optionally with a new class count)."""
        n = self.num_classes if num_classes is None else int(num_classes)
        old = self.head
        self.head = nn.Linear(old.in_features, n).to(device=old.weight.device, dtype=old.weight.dtype)

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return self.head.parameters()

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Every trainable parameter except the head's."""
        head_ids = {id(p) for p in self.head.parameters()}
        return (p for p in self.parameters() if id(p) not in head_ids)

    def backbone_named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if not n.startswith("head."))

    # ------------------------------------------------------------------ forward
    def forward_stages(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Return (stage outputs after dropout, penultimate features)."""
        h = self.stem(self.normalize(x))
        outs: list[torch.Tensor] = []
        for stage, drop in zip(self.stages, self.drop, strict=True):
            h = drop(stage(h))
            outs.append(h)
        return outs, self.neck(h)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (the input of ``head``), shape (B, feature_dim)."""
        h = self.stem(self.normalize(x))
        for stage, drop in zip(self.stages, self.drop, strict=True):
            h = drop(stage(h))
        return self.neck(h)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def config(self) -> dict:
        """JSON-serialisable constructor arguments; enough to rebuild the architecture."""
        return {"arch": self.arch, "num_classes": self.num_classes,
                "spatial_dropout": self.spatial_dropout}

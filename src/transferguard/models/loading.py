"""One loader for every model a user names: ``train --source``, ``attack`` and ``audit`` share it.

A model spec is one of:

* ``PATH`` — a transferguard checkpoint (``.safetensors`` with its ``.json`` sidecar, as written by
  :func:`save_checkpoint`, linked into ``runs/NAME/checkpoints/``, copied or renamed as a pair), or
  a transferguard ``.safetensors`` alone (its header records the architecture). ``PATH``,
  ``PATH.safetensors`` and ``PATH.json`` name the same checkpoint.
* ``ARCH:WEIGHTS`` — the above, or a plain ``.safetensors`` state dict, or a PyTorch state-dict
  file read with ``weights_only=True`` (pickles that would run code are refused). For plain files
  the class count is read from the head weight (``head.weight`` in our layout, or the source
  library's name for it, e.g. torchvision's ``fc.weight``).
* ``ARCH`` alone — the architecture's public pre-trained weights, when they are on this machine;
  only where the caller allows it (a source model, not a target).
* ``timm:<name>[:WEIGHTS]`` — a timm model (when timm is installed).

The path the user gives always wins over the file name recorded in a sidecar; a sidecar whose
checksum does not match the weights beside it is refused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._modelspec import parse_model_spec, split_model_spec
from ..errors import CheckpointError, ConfigError
from ._pretrained import translate_state_dict
from ._weights import load_weights_file, load_weights_into, safetensors_metadata
from .base import TGModel
from .checkpoint import load_checkpoint
from .registry import arch_info, create_model

__all__ = ["PRETRAINED_CLASSES", "LoadedModel", "load_model", "split_model_spec"]

log = logging.getLogger(__name__)

#: Class count assumed for public pre-trained weights (ImageNet heads).
PRETRAINED_CLASSES = 1000


@dataclass
class LoadedModel:
    """A model ready to use (eval mode) plus where it came from."""

    model: TGModel
    spec: str
    arch: str
    weights: str | None
    sidecar: dict[str, Any] = field(default_factory=dict)

    @property
    def trained_size(self) -> int | None:
        """Input size recorded in a transferguard checkpoint's sidecar, if any."""
        info = self.sidecar
        for key in ("input_size", "image_size", "size"):
            if isinstance(info.get(key), int):
                return int(info[key])
        data = (info.get("spec") or {}).get("data") if isinstance(info.get("spec"), dict) else None
        if isinstance(data, dict) and isinstance(data.get("size"), int):
            return int(data["size"])
        return None


def _sidecar_of(path: Path) -> Path | None:
    stem = path.with_suffix("") if path.suffix == ".safetensors" else path
    side = stem.with_name(stem.name + ".json")
    if not side.is_file():
        return None
    try:
        info = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return side  # let load_checkpoint report the broken sidecar
    # A JSON file that is not ours (e.g. a dataset's) does not make a checkpoint.
    return side if isinstance(info, dict) and "config" in info else None


def _build(arch: str, num_classes: int, **kwargs: Any) -> TGModel:
    try:
        return create_model(arch, num_classes, **kwargs)
    except (ConfigError, CheckpointError):
        raise
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot build {arch!r}: {str(exc).splitlines()[0][:200]}") from None


def _head_rows(model: TGModel, state: dict[str, torch.Tensor]) -> int | None:
    """Class count of a state dict: the row count of its head weight (our layout or the library's)."""
    head = translate_state_dict(model, state).get("head.weight")
    return int(head.shape[0]) if isinstance(head, torch.Tensor) and head.ndim == 2 else None


def _check_arch(found: str, wanted: str | None, path: Path, role: str) -> None:
    if wanted is not None and found != wanted and not wanted.startswith("timm:"):
        raise CheckpointError(f"--{role}: {path} is a {found!r} checkpoint, not {wanted!r}")


def _from_checkpoint(path: Path, spec: str, role: str, arch: str | None) -> LoadedModel:
    """A transferguard checkpoint: the weights at ``path`` and the sidecar beside them."""
    model, sidecar = load_checkpoint(path, device="cpu")
    _check_arch(model.arch, arch, path, role)
    return LoadedModel(model, spec, model.arch, str(path), sidecar)


def _from_state_dict(path: Path, spec: str, role: str, arch: str | None) -> LoadedModel:
    """A bare weights file: the architecture comes from the spec or the safetensors header."""
    header = safetensors_metadata(path)
    config: dict[str, Any] = {}
    if header.get("config"):
        try:
            config = dict(json.loads(header["config"]))
        except (ValueError, TypeError):
            config = {}
    recorded = config.pop("arch", None) or header.get("arch")
    if arch is None:
        if not recorded:
            raise ConfigError(f"--{role} {spec!r}: name the architecture too, e.g. dtn:{spec}")
        arch = recorded
    elif recorded and recorded != arch and not arch.startswith("timm:"):
        raise CheckpointError(f"--{role}: {path} holds a {recorded!r} model, not {arch!r}")
    if recorded != arch:
        config = {}  # the header's config describes its own architecture only
    arch_info(arch)  # ConfigError for an unknown architecture (one named in the header)
    state = load_weights_file(path)  # safe: safetensors or weights_only=True; NaN/inf refused
    config.pop("num_classes", None)
    probe = _build(arch, 10, **config)
    rows = _head_rows(probe, state)
    if rows is None:
        raise CheckpointError(f"--{role}: weights {path} do not fit architecture {arch!r}: no "
                              "classifier head weight found (expected e.g. 'head.weight')")
    model = probe if rows == probe.num_classes else _build(arch, rows, **config)
    load_weights_into(model, translate_state_dict(model, state))
    return LoadedModel(model.eval(), spec, arch, str(path))


def load_model(spec: str, *, role: str = "model", require_weights: bool = True,
               device: torch.device | str = "cpu") -> LoadedModel:
    """Build and load the model named by ``spec`` (see the module doc); eval mode on ``device``.

    ``role`` (``source``, ``target``…) names the command-line option in error messages;
    ``require_weights=False`` lets ``ARCH`` alone mean its public pre-trained weights. Every
    failure is a :class:`ConfigError` (bad name) or :class:`CheckpointError` (bad or unsafe file).
    """
    text = str(spec)
    arch, weights, path = parse_model_spec(text, role)  # CheckpointError for a missing file
    info = arch_info(arch) if arch is not None else None  # ConfigError for an unknown name
    if weights is None:
        assert arch is not None and info is not None
        if require_weights:
            raise ConfigError(f"--{role} {text!r}: give the trained weights as PATH or ARCH:WEIGHTS, "
                              f"e.g. {arch}:model.safetensors")
        if not info["pretrained_offline"]:
            raise ConfigError(f"--{role} {arch!r}: no public pre-trained weights for {arch} on "
                              f"this machine ({info['pretrained_source']}); pass {arch}:WEIGHTS")
        model = _build(arch, PRETRAINED_CLASSES, pretrained=True)
        return _placed(LoadedModel(model.eval(), text, arch, None), device)
    assert path is not None
    if _sidecar_of(path) is not None and path.suffix in (".safetensors", ""):
        loaded = _from_checkpoint(path, text, role, arch)
    else:
        loaded = _from_state_dict(path, text, role, arch)
    return _placed(loaded, device)


def _placed(loaded: LoadedModel, device: torch.device | str) -> LoadedModel:
    loaded.model.to(device).eval()
    return loaded

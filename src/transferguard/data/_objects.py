"""Natural-image domains of the first paper: ``cifar10-9`` and ``stl10-9``.

Both keep the nine classes CIFAR-10 and STL-10 share (CIFAR drops *frog*, STL drops *monkey*),
with labels aligned to :data:`SHARED_CLASSES`. The files are read in their own formats; the
CIFAR-10 python batches are pickles, so they are opened with an unpickler that only admits the
NumPy array constructors they need and nothing that could run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from ..errors import DataError
from ._digits import locate_or_fetch
from ._image import fit_size
from ._raw import RawDomain

SHARED_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "horse", "ship", "truck"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]
STL_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
#: original label → shared label, -1 = dropped
CIFAR_TO_SHARED = np.array([0, 1, 2, 3, 4, 5, -1, 6, 7, 8])
STL_TO_SHARED = np.array([0, 2, 1, 3, 4, 5, 6, -1, 7, 8])

_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = ["test_batch"]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a pickled NumPy array needs."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _safe_unpickle(path: Path) -> dict:
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot read CIFAR-10 batch {path}: {exc}") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict batch, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def locate_cifar(root: Path) -> tuple[str, Path]:
    """``("py", dir)`` or ``("bin", dir)`` for the python or binary CIFAR-10 distribution."""
    for d in (root, root / "cifar10", root / "CIFAR10"):
        py, bn = d / "cifar-10-batches-py", d / "cifar-10-batches-bin"
        if all((py / f).is_file() for f in _CIFAR_TRAIN + _CIFAR_TEST):
            return "py", py
        if all((bn / f"{f}.bin").is_file() for f in _CIFAR_TRAIN + _CIFAR_TEST):
            return "bin", bn
    raise DataError(f"cifar10-9: missing {root}/cifar-10-batches-py/ (data_batch_1..5, test_batch) "
                    f"or {root}/cifar-10-batches-bin/ (the .bin batches); pass download=True to "
                    "fetch CIFAR-10 with torchvision, or unpack cifar-10-python.tar.gz there")


def _read_cifar_batches(kind: str, d: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name in names:
        if kind == "py":
            batch = _safe_unpickle(d / name)
            if "data" not in batch or "labels" not in batch:
                raise DataError(f"{d / name}: missing 'data' or 'labels'")
            x = np.asarray(batch["data"], dtype=np.uint8)
            y = np.asarray(batch["labels"], dtype=np.int64)
        else:
            raw = np.fromfile(d / f"{name}.bin", dtype=np.uint8)
            if raw.size % 3073:
                raise DataError(f"{d / name}.bin: size is not a multiple of 3073-byte records")
            rec = raw.reshape(-1, 3073)
            x, y = rec[:, 1:], rec[:, 0].astype(np.int64)
        if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
            raise DataError(f"{d / name}: expected N×3072 images and N labels, got {x.shape}")
        xs.append(x.reshape(-1, 3, 32, 32))
        ys.append(y)
    y = np.concatenate(ys)
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"CIFAR-10 labels in {d} outside 0..9")
    return np.concatenate(xs), y


def _keep_shared(x: np.ndarray, y: np.ndarray, mapping: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    new = mapping[y]
    keep = new >= 0
    return x[keep], new[keep].astype(np.int64)


def load_cifar9(root: Path, size: int, download: bool) -> RawDomain:
    """CIFAR-10 without *frog* (45,000/9,000), labels in :data:`SHARED_CLASSES` order."""
    kind, d = locate_or_fetch(lambda: locate_cifar(root), root, download,
                              ("CIFAR10", {"train": True}))
    x_tr, y_tr = _keep_shared(*_read_cifar_batches(kind, d, _CIFAR_TRAIN), CIFAR_TO_SHARED)
    x_te, y_te = _keep_shared(*_read_cifar_batches(kind, d, _CIFAR_TEST), CIFAR_TO_SHARED)
    return RawDomain(list(SHARED_CLASSES), fit_size(x_tr, size), y_tr, fit_size(x_te, size), y_te,
                     source=f"CIFAR-10 {kind} batches in {d}, frog dropped")


def check_cifar9(root: Path) -> tuple[bool, str]:
    try:
        kind, d = locate_cifar(root)
    except DataError as exc:
        return False, str(exc)
    return True, f"{kind} batches in {d}"


_STL_FILES = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"]


def locate_stl(root: Path) -> Path:
    for d in (root / "stl10_binary", root):
        if all((d / f).is_file() for f in _STL_FILES):
            return d
    raise DataError(f"stl10-9: missing {root}/stl10_binary/ with {', '.join(_STL_FILES)}; pass "
                    "download=True to fetch STL-10 with torchvision, or unpack stl10_binary.tar.gz there")


def read_stl(x_path: Path, y_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """STL-10 binary: 96×96×3 images stored column-major per channel, labels 1..10 as bytes."""
    raw = np.fromfile(x_path, dtype=np.uint8)
    if raw.size % (3 * 96 * 96):
        raise DataError(f"{x_path}: size is not a multiple of one 3×96×96 image")
    x = raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
    y = np.fromfile(y_path, dtype=np.uint8).astype(np.int64) - 1
    if len(y) != len(x):
        raise DataError(f"{y_path}: {len(y)} labels for {len(x)} images in {x_path}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{y_path}: labels outside 1..10")
    return np.ascontiguousarray(x), y


def load_stl9(root: Path, size: int, download: bool) -> RawDomain:
    """STL-10 labelled splits without *monkey* (4,500/7,200), resized from 96 px to ``size``."""
    d = locate_or_fetch(lambda: locate_stl(root), root, download,
                        ("STL10", {"split": "train"}))
    x_tr, y_tr = _keep_shared(*read_stl(d / "train_X.bin", d / "train_y.bin"), STL_TO_SHARED)
    x_te, y_te = _keep_shared(*read_stl(d / "test_X.bin", d / "test_y.bin"), STL_TO_SHARED)
    return RawDomain(list(SHARED_CLASSES), fit_size(x_tr, size), y_tr, fit_size(x_te, size), y_te,
                     source=f"STL-10 binary files in {d}, monkey dropped")


def check_stl9(root: Path) -> tuple[bool, str]:
    try:
        d = locate_stl(root)
    except DataError as exc:
        return False, str(exc)
    return True, f"binary files in {d}"

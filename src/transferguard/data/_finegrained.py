"""Image-file domains of the second paper (Renofeation) plus a generic ``folder:<path>`` domain.

Each reader follows its dataset's official layout and split files; every image is decoded to RGB,
its shorter side resized to ``size`` and centre-cropped, and stored as uint8 (CUB-200 at 224 px
is about 1.8 GB in memory).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._progress import progress_bar
from ..errors import DataError
from ._digits import locate_or_fetch
from ._image import load_image
from ._raw import HOLDOUT_SEED, RawDomain
from ._split import holdout_numpy

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                    ".pgm"}
FOLDER_TEST_FRACTION = 0.2


def decode_images(paths: Sequence[Path], size: int, desc: str) -> np.ndarray:
    """Decode ``paths`` into one uint8 (N, 3, size, size) array, with a progress bar."""
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, p in enumerate(progress_bar(paths, desc=desc, unit="img", disable=len(paths) < 500,
                               leave=False)):
        out[i] = load_image(p, size)
    return out


def _make(classes: list[str], train: list[tuple[Path, int]], test: list[tuple[Path, int]],
          size: int, name: str, source: str, meta: dict | None = None) -> RawDomain:
    if not train:
        raise DataError(f"{name}: the training split lists no images")
    if not test:
        raise DataError(f"{name}: the test split lists no images")
    x_tr = decode_images([p for p, _ in train], size, f"{name} train")
    x_te = decode_images([p for p, _ in test], size, f"{name} test")
    y_tr = np.array([c for _, c in train], dtype=np.int64)
    y_te = np.array([c for _, c in test], dtype=np.int64)
    return RawDomain(classes, x_tr, y_tr, x_te, y_te, source=source, meta=meta or {})


def _read_lines(path: Path) -> list[str]:
    try:
        return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _first_dir(name: str, candidates: list[Path], required: list[str], hint: str) -> Path:
    for d in candidates:
        if all((d / r).exists() for r in required):
            return d
    raise DataError(f"{name}: no directory holding {', '.join(required)} among "
                    f"{', '.join(str(c) for c in candidates)}; {hint}")


# ---------------------------------------------------------------- CUB-200-2011

_CUB_REQ = ["images.txt", "train_test_split.txt", "image_class_labels.txt", "classes.txt", "images"]
_CUB_HINT = "download CUB_200_2011.tgz from the Caltech-UCSD Birds page and unpack it under root"


def locate_cub(root: Path) -> Path:
    return _first_dir("cub200", [root / "CUB_200_2011", root], _CUB_REQ, _CUB_HINT)


def _id_table(path: Path) -> dict[int, str]:
    table = {}
    for ln in _read_lines(path):
        parts = ln.split(maxsplit=1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}: malformed line {ln!r}")
        table[int(parts[0])] = parts[1]
    return table


def load_cub(root: Path, size: int, download: bool) -> RawDomain:
    """CUB-200-2011 (5,994/5,794 images, 200 species) with its official train/test split."""
    d = locate_cub(root)
    images = _id_table(d / "images.txt")
    is_train = _id_table(d / "train_test_split.txt")
    labels = _id_table(d / "image_class_labels.txt")
    cls = _id_table(d / "classes.txt")
    class_ids = sorted(cls)
    classes = [re.sub(r"^\d+\.", "", cls[i]) for i in class_ids]
    index = {cid: k for k, cid in enumerate(class_ids)}
    train, test = [], []
    for img_id, rel in sorted(images.items()):
        if img_id not in is_train or img_id not in labels:
            raise DataError(f"cub200: image id {img_id} lacks a split or a label")
        item = (d / "images" / rel, index[int(labels[img_id])])
        (train if is_train[img_id].strip() == "1" else test).append(item)
    return _make(classes, train, test, size, "cub200", f"CUB-200-2011 in {d}")


# ---------------------------------------------------------------- Stanford Dogs

_DOGS_REQ = ["Images", "train_list.mat", "test_list.mat"]
_DOGS_HINT = ("download images.tar and lists.tar from the Stanford Dogs page and unpack both "
              "under root")


def locate_dogs(root: Path) -> Path:
    cands = [root, root / "StanfordDogs", root / "stanford_dogs", root / "dogs"]
    return _first_dir("dogs", cands, _DOGS_REQ, _DOGS_HINT)


def _mat_strings(arr: np.ndarray) -> list[str]:
    """Flatten a MATLAB cell array of strings as returned by scipy.io.loadmat."""
    out: list[str] = []
    for item in np.asarray(arr, dtype=object).reshape(-1):
        if isinstance(item, str):
            out.append(item)
        else:
            out.extend(_mat_strings(item))
    return out


def _loadmat(path: Path) -> dict:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path))
    except (OSError, ValueError, NotImplementedError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def load_dogs(root: Path, size: int, download: bool) -> RawDomain:
    """Stanford Dogs (12,000/8,580 images, 120 breeds) from ``train_list.mat`` / ``test_list.mat``."""
    d = locate_dogs(root)
    splits = {}
    for split in ("train", "test"):
        mat = _loadmat(d / f"{split}_list.mat")
        if "file_list" not in mat or "labels" not in mat:
            raise DataError(f"{d / f'{split}_list.mat'}: expected variables file_list and labels")
        files = _mat_strings(mat["file_list"])
        labels = np.asarray(mat["labels"]).reshape(-1).astype(np.int64)
        if len(files) != len(labels):
            raise DataError(f"{d / f'{split}_list.mat'}: {len(files)} files but {len(labels)} labels")
        splits[split] = list(zip(files, labels.tolist(), strict=True))
    names: dict[int, str] = {}
    for f, lab in splits["train"] + splits["test"]:
        folder = Path(f).parts[0] if len(Path(f).parts) > 1 else f"class_{lab}"
        names.setdefault(lab, folder.split("-", 1)[-1])
    ids = sorted(names)
    index = {lab: k for k, lab in enumerate(ids)}
    conv = {s: [(d / "Images" / f, index[lab]) for f, lab in v] for s, v in splits.items()}
    return _make([names[i] for i in ids], conv["train"], conv["test"], size, "dogs",
                 f"Stanford Dogs in {d}")


# ---------------------------------------------------------------- Oxford Flowers 102

_FLOWERS_REQ = ["jpg", "imagelabels.mat", "setid.mat"]
_FLOWERS_HINT = ("pass download=True to fetch it with torchvision, or unpack 102flowers.tgz with "
                 "imagelabels.mat and setid.mat under root")


def locate_flowers(root: Path) -> Path:
    return _first_dir("flowers102", [root / "flowers-102", root], _FLOWERS_REQ, _FLOWERS_HINT)


def load_flowers(root: Path, size: int, download: bool) -> RawDomain:
    """Oxford Flowers 102: train = official trnid + valid (20/class), test = tstid (6,149)."""
    d = locate_or_fetch(lambda: locate_flowers(root), root, download,
                        ("Flowers102", {"split": "train"}))
    labels = np.asarray(_loadmat(d / "imagelabels.mat").get("labels", np.zeros(0))).reshape(-1)
    setid = _loadmat(d / "setid.mat")
    if not labels.size or not all(k in setid for k in ("trnid", "valid", "tstid")):
        raise DataError(f"flowers102: {d} needs 'labels' in imagelabels.mat and "
                        "trnid/valid/tstid in setid.mat")
    ids = sorted({int(v) for v in labels})
    index = {v: k for k, v in enumerate(ids)}

    def items(keys: tuple[str, ...]) -> list[tuple[Path, int]]:
        out = []
        for k in keys:
            for i in np.asarray(setid[k]).reshape(-1).astype(int).tolist():
                if not 1 <= i <= len(labels):
                    raise DataError(f"flowers102: setid.mat {k} refers to image {i}, "
                                    f"but imagelabels.mat has {len(labels)} labels")
                out.append((d / "jpg" / f"image_{i:05d}.jpg", index[int(labels[i - 1])]))
        return out

    return _make([f"flower_{i:03d}" for i in ids], items(("trnid", "valid")), items(("tstid",)),
                 size, "flowers102", f"Oxford Flowers 102 in {d}",
                 meta={"train_split": "trnid + valid"})


# ---------------------------------------------------------------- MIT Indoor 67

_INDOOR_REQ = ["Images", "TrainImages.txt", "TestImages.txt"]
_INDOOR_HINT = ("download indoorCVPR_09.tar plus TrainImages.txt and TestImages.txt from the "
                "MIT Indoor Scenes page and put them under root")


def locate_indoor(root: Path) -> Path:
    cands = [root, root / "indoor67", root / "MITIndoor67", root / "indoorCVPR_09"]
    return _first_dir("indoor67", cands, _INDOOR_REQ, _INDOOR_HINT)


def load_indoor(root: Path, size: int, download: bool) -> RawDomain:
    """MIT Indoor 67 (80 train / 20 test per class) from ``TrainImages.txt`` / ``TestImages.txt``."""
    d = locate_indoor(root)
    lists = {s: _read_lines(d / f"{s}Images.txt") for s in ("Train", "Test")}
    classes = sorted({ln.replace("\\", "/").split("/")[0] for v in lists.values() for ln in v})
    index = {c: k for k, c in enumerate(classes)}

    def items(lines: list[str]) -> list[tuple[Path, int]]:
        return [(d / "Images" / ln.replace("\\", "/"), index[ln.replace("\\", "/").split("/")[0]])
                for ln in lines]

    return _make(classes, items(lists["Train"]), items(lists["Test"]), size, "indoor67",
                 f"MIT Indoor 67 in {d}")


# ---------------------------------------------------------------- Stanford 40 Actions

_S40_REQ = ["JPEGImages", "ImageSplits"]
_S40_HINT = ("download StanfordActionDataset.zip (JPEGImages/ and ImageSplits/) from the "
             "Stanford 40 Actions page and unpack it under root")


def locate_stanford40(root: Path) -> Path:
    cands = [root, root / "Stanford40", root / "StanfordActionDataset"]
    return _first_dir("stanford40", cands, _S40_REQ, _S40_HINT)


def load_stanford40(root: Path, size: int, download: bool) -> RawDomain:
    """Stanford 40 Actions (100 train / ≈138 test per action) from ``ImageSplits/<action>_*.txt``."""
    d = locate_stanford40(root)
    splits = d / "ImageSplits"
    actions_file = next((p for p in (splits / "actions.txt", d / "actions.txt") if p.is_file()), None)
    if actions_file is not None:
        rows = [ln.split() for ln in _read_lines(actions_file)]
        classes = [r[0] for r in rows if r and r[0] != "action_name"]
    else:
        classes = sorted(p.name[: -len("_train.txt")] for p in splits.glob("*_train.txt"))
    if not classes:
        raise DataError(f"stanford40: no actions listed in {splits} (actions.txt or <action>_train.txt)")
    out: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for k, action in enumerate(classes):
        for split in ("train", "test"):
            f = splits / f"{action}_{split}.txt"
            if not f.is_file():
                raise DataError(f"stanford40: missing split file {f}")
            out[split] += [(d / "JPEGImages" / name, k) for name in _read_lines(f)]
    return _make(classes, out["train"], out["test"], size, "stanford40",
                 f"Stanford 40 Actions in {d}")


# ---------------------------------------------------------------- generic folder

def _class_folders(path: Path) -> list[tuple[str, list[Path]]]:
    out = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in sub.rglob("*")
                       if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                       and not f.name.startswith("."))
        if files:
            out.append((sub.name, files))
    return out


def locate_folder(path: Path) -> Path:
    if not path.is_dir():
        raise DataError(f"folder: {path} is not a directory (expected one subfolder of images "
                        "per class)")
    return path


def folder_fingerprint(path: Path) -> list:
    """File count, total size and newest mtime: changes when images are added or replaced."""
    files = [f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
    stats = [f.stat() for f in files]
    return [len(files), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)]


def load_folder(path: Path, size: int, download: bool) -> RawDomain:
    """ImageFolder layout: one subfolder per class, or ``train/`` and ``test/`` each laid out so.

    Without ``train/``+``test/`` a fixed stratified 20% per class becomes the test split.
    """
    path = locate_folder(path)
    tr_dir, te_dir = path / "train", path / "test"
    if tr_dir.is_dir() and te_dir.is_dir():
        tr, te = _class_folders(tr_dir), _class_folders(te_dir)
        classes = sorted({c for c, _ in tr} | {c for c, _ in te})
        index = {c: k for k, c in enumerate(classes)}
        train = [(f, index[c]) for c, fs in tr for f in fs]
        test = [(f, index[c]) for c, fs in te for f in fs]
        if not train or not test:
            raise DataError(f"folder: {tr_dir} or {te_dir} holds no images in class subfolders")
        return _make(classes, train, test, size, f"folder:{path}", f"image folder {path}",
                     meta={"test_split": "test/ subfolder"})
    groups = _class_folders(path)
    if not groups:
        raise DataError(f"folder: {path} holds no images in class subfolders "
                        f"(extensions {', '.join(sorted(IMAGE_EXTENSIONS))})")
    classes = [c for c, _ in groups]
    items = [(f, k) for k, (_, fs) in enumerate(groups) for f in fs]
    y = np.array([k for _, k in items], dtype=np.int64)
    x = decode_images([f for f, _ in items], size, f"folder:{path.name}")
    tr, te = holdout_numpy(y, FOLDER_TEST_FRACTION, HOLDOUT_SEED)
    return RawDomain(classes, x[tr], y[tr], x[te], y[te], source=f"image folder {path}",
                     meta={"test_split": f"fixed stratified hold-out, seed {HOLDOUT_SEED}, "
                                         f"{FOLDER_TEST_FRACTION:.0%} per class"})

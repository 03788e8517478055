"""Every on-disk dataset reader, run on tiny files written in that dataset's exact format."""

from __future__ import annotations

import bz2
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from transferguard.data import load_domain
from transferguard.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERGUARD_CACHE", str(tmp_path / "cache"))


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    code = {np.dtype(np.uint8): 0x08}[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    path.write_bytes(header + arr.tobytes())


def _sorted_rows(x: torch.Tensor) -> list[bytes]:
    return sorted(bytes(v) for v in x.numpy())


# ---------------------------------------------------------------- MNIST raw IDX

def test_mnist_idx_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    x_tr = _rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8)
    y_tr = (np.arange(40) % 10).astype(np.uint8)
    x_te = _rng(1).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    y_te = (np.arange(20) % 10).astype(np.uint8)
    _write_idx(raw / "train-images-idx3-ubyte", x_tr)
    _write_idx(raw / "train-labels-idx1-ubyte", y_tr)
    _write_idx(raw / "t10k-images-idx3-ubyte", x_te)
    _write_idx(raw / "t10k-labels-idx1-ubyte", y_te)
    d = load_domain("mnist", root=tmp_path, val_fraction=0.25)
    assert len(d.train) == 30 and len(d.val) == 10 and len(d.test) == 20
    expect = np.pad(x_te, ((0, 0), (2, 2), (2, 2)))
    got = d.test.x[:, 0].numpy()
    assert np.array_equal(got, expect) and np.array_equal(d.test.y.numpy(), y_te)
    both = torch.cat([d.train.x, d.val.x])[:, 1].numpy()
    assert sorted(map(bytes, both)) == sorted(map(bytes, np.pad(x_tr, ((0, 0), (2, 2), (2, 2)))))
    d64 = load_domain("mnist", root=tmp_path, size=64, val_fraction=0.0)
    assert d64.test.x.shape == (20, 3, 64, 64)


# ---------------------------------------------------------------- USPS libsvm bz2

def _write_usps(path: Path, vals: np.ndarray, labels: np.ndarray) -> None:
    lines = []
    for v, lab in zip(vals, labels, strict=True):
        feats = " ".join(f"{i + 1}:{x:.6f}" for i, x in enumerate(v) if x != 0)
        lines.append(f"{lab + 1} {feats}")
    with bz2.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")


def test_usps_libsvm_bz2(tmp_path):
    vals = _rng(2).uniform(-1, 1, (30, 256)).round(3)
    vals[0, :10] = 0.0  # absent features are zeros in libsvm
    labels = np.arange(30) % 10
    _write_usps(tmp_path / "usps.bz2", vals, labels)
    _write_usps(tmp_path / "usps.t.bz2", vals[:10], labels[:10])
    d = load_domain("usps", root=tmp_path, size=16, val_fraction=0.0)
    expect = ((vals + 1) * 127.5).round().astype(np.uint8).reshape(-1, 16, 16)
    assert np.array_equal(d.train.x[:, 0].numpy(), expect)
    assert d.train.x[0, 0, 0, 0] == 128  # a missing feature means 0 → mid grey
    assert d.train.y.tolist() == labels.tolist()
    assert load_domain("usps", root=tmp_path).train.x.shape[1:] == (3, 32, 32)


def test_usps_bad_line_names_file(tmp_path):
    with bz2.open(tmp_path / "usps.bz2", "wt") as fh:
        fh.write("3 1:0.5 2:oops\n")
    with bz2.open(tmp_path / "usps.t.bz2", "wt") as fh:
        fh.write("3 1:0.5\n")
    with pytest.raises(DataError, match=r"usps\.bz2, line 1"):
        load_domain("usps", root=tmp_path)


# ---------------------------------------------------------------- SVHN .mat

def test_svhn_mat(tmp_path):
    x = _rng(3).integers(0, 256, (32, 32, 3, 20), dtype=np.uint8)
    y = (np.arange(20) % 10 + 1).reshape(-1, 1).astype(np.uint8)  # 10 means digit 0
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": x[..., :10], "y": y[:10]})
    d = load_domain("svhn", root=tmp_path, val_fraction=0.0)
    assert np.array_equal(d.train.x.numpy(), x.transpose(3, 2, 0, 1))
    assert d.train.y.tolist() == [(i % 10 + 1) % 10 for i in range(20)]
    assert len(d.test) == 10


# ---------------------------------------------------------------- CIFAR-10 and STL-10

def _cifar_py(root: Path) -> tuple[np.ndarray, np.ndarray]:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    xs, ys = [], []
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        x = _rng(10 + i).integers(0, 256, (20, 3072), dtype=np.uint8)
        y = [j % 10 for j in range(20)]
        with open(d / name, "wb") as fh:
            pickle.dump({b"batch_label": b"x", b"labels": y, b"data": x}, fh, protocol=2)
        xs.append(x)
        ys.append(np.array(y))
    return np.concatenate(xs[:5]), np.concatenate(ys[:5])


def test_cifar9_python_batches_drop_frog(tmp_path):
    x, y = _cifar_py(tmp_path)
    d = load_domain("cifar10-9", root=tmp_path, val_fraction=0.0)
    assert d.num_classes == 9 and d.classes[6] == "horse"
    keep = y != 6
    assert len(d.train) == keep.sum() == 90 and len(d.test) == 18
    assert np.array_equal(d.train.x.numpy(), x[keep].reshape(-1, 3, 32, 32))
    mapped = np.array([0, 1, 2, 3, 4, 5, -1, 6, 7, 8])[y[keep]]
    assert d.train.y.tolist() == mapped.tolist()


def test_cifar_pickle_with_code_is_refused(tmp_path):
    _cifar_py(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "wb") as fh:
        pickle.dump({"data": Evil(), "labels": []}, fh)
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_domain("cifar10-9", root=tmp_path)


def test_cifar9_binary_batches(tmp_path):
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    recs = []
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        rec = _rng(i).integers(0, 256, (10, 3073), dtype=np.uint8)
        rec[:, 0] = np.arange(10)
        rec.tofile(d / f"{name}.bin")
        recs.append(rec)
    dom = load_domain("cifar10-9", root=tmp_path, val_fraction=0.0)
    assert len(dom.test) == 9 and dom.test.y.tolist() == list(range(9))
    assert np.array_equal(dom.test.x[6].numpy().ravel(), recs[5][7, 1:])  # horse: 7 → 6


def test_stl9_binary_resized_drop_monkey(tmp_path):
    d = tmp_path / "stl10_binary"
    d.mkdir()
    imgs = np.zeros((20, 3, 96, 96), np.uint8)
    for i in range(20):
        imgs[i, i % 3] = 10 * i  # one bright channel per image, flat → resize keeps values
    labels = (np.arange(20) % 10 + 1).astype(np.uint8)
    for split in ("train", "test"):
        imgs.transpose(0, 1, 3, 2).tofile(d / f"{split}_X.bin")  # STL stores columns first
        labels.tofile(d / f"{split}_y.bin")
    dom = load_domain("stl10-9", root=tmp_path, val_fraction=0.0)
    assert dom.train.x.shape == (18, 3, 32, 32)
    assert dom.train.y.tolist() == [0, 2, 1, 3, 4, 5, 6, 7, 8] * 2
    assert int(dom.train.x[1, 1, 5, 5]) == 10 and int(dom.train.x[1, 0].max()) == 0
    # orientation: a vertical bar in the true image stays vertical
    bar = np.zeros((1, 3, 96, 96), np.uint8)
    bar[..., :, 10:20] = 255
    (np.concatenate([bar, imgs[1:]])).transpose(0, 1, 3, 2).tofile(d / "train_X.bin")
    dom = load_domain("stl10-9", root=tmp_path, size=96, val_fraction=0.0)
    assert dom.train.x[0, 0, :, 15].min() == 255 and dom.train.x[0, 0, :, 50].max() == 0


# ---------------------------------------------------------------- paper-2 image datasets

def _jpeg(path: Path, colour: tuple[int, int, int], size=(40, 30), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, colour)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)


def test_cub200_layout(tmp_path):
    d = tmp_path / "CUB_200_2011"
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    imgs, split, labels = [], [], []
    for i in range(1, 9):
        cls = (i - 1) % 2
        rel = f"{classes[cls]}/img_{i}.jpg"
        _jpeg(d / "images" / rel, (200, 10, 10) if cls == 0 else (10, 10, 200))
        imgs.append(f"{i} {rel}")
        split.append(f"{i} {1 if i <= 6 else 0}")
        labels.append(f"{i} {cls + 1}")
    (d / "images.txt").write_text("\n".join(imgs) + "\n")
    (d / "train_test_split.txt").write_text("\n".join(split) + "\n")
    (d / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (d / "classes.txt").write_text("\n".join(f"{k + 1} {c}" for k, c in enumerate(classes)) + "\n")
    dom = load_domain("cub200", root=tmp_path, size=24, val_fraction=0.0)
    assert dom.classes == ["Black_footed_Albatross", "Laysan_Albatross"]
    assert len(dom.train) == 6 and len(dom.test) == 2 and dom.train.x.shape[1:] == (3, 24, 24)
    red = dom.train.x[dom.train.y == 0].float().mean(dim=(0, 2, 3))
    assert red[0] > 150 and red[2] < 40


def test_dogs_mat_lists(tmp_path):
    files, labels = [], []
    for k, breed in enumerate(["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]):
        for j in range(3):
            rel = f"{breed}/{breed.split('-')[0]}_{j}.jpg"
            _jpeg(tmp_path / "Images" / rel, (50 * k, 100, 150))
            files.append(rel)
            labels.append(k + 1)
    cell = np.empty((len(files), 1), dtype=object)
    for i, f in enumerate(files):
        cell[i, 0] = np.array([f])
    lab = np.array(labels, dtype=np.uint8).reshape(-1, 1)
    scipy.io.savemat(tmp_path / "train_list.mat", {"file_list": cell, "labels": lab})
    scipy.io.savemat(tmp_path / "test_list.mat", {"file_list": cell[::3], "labels": lab[::3]})
    dom = load_domain("dogs", root=tmp_path, size=16, val_fraction=0.0)
    assert dom.classes == ["Chihuahua", "Japanese_spaniel"]
    assert dom.train.y.tolist() == [0, 0, 0, 1, 1, 1] and dom.test.y.tolist() == [0, 1]


def test_flowers102_mat_files(tmp_path):
    labels = np.array([[1, 1, 2, 2, 3, 3, 1, 2, 3]], dtype=np.uint8)
    for i in range(1, 10):
        _jpeg(tmp_path / "jpg" / f"image_{i:05d}.jpg", (20 * i, 0, 0), size=(50, 40))
    scipy.io.savemat(tmp_path / "imagelabels.mat", {"labels": labels})
    scipy.io.savemat(tmp_path / "setid.mat", {"trnid": np.array([[1, 3, 5]]),
                                              "valid": np.array([[2, 4, 6]]),
                                              "tstid": np.array([[7, 8, 9]])})
    dom = load_domain("flowers102", root=tmp_path, size=20, val_fraction=0.0)
    assert dom.num_classes == 3 and len(dom.train) == 6 and len(dom.test) == 3
    assert dom.test.y.tolist() == [0, 1, 2]
    assert abs(int(dom.test.x[0, 0, 10, 10]) - 140) <= 3  # image 7 has red 140 (JPEG-lossy)


def test_indoor67_lists(tmp_path):
    train, test = [], []
    for cls in ("kitchen", "bar"):
        for j in range(3):
            rel = f"{cls}/{cls}_{j}.jpg"
            _jpeg(tmp_path / "Images" / rel, (90, 90, 90), mode="L")  # grey images become RGB
            (train if j < 2 else test).append(rel)
    (tmp_path / "TrainImages.txt").write_text("\n".join(train) + "\n")
    (tmp_path / "TestImages.txt").write_text("\n".join(test) + "\n")
    dom = load_domain("indoor67", root=tmp_path, size=16, val_fraction=0.0)
    assert dom.classes == ["bar", "kitchen"]
    assert sorted(dom.train.y.tolist()) == [0, 0, 1, 1] and len(dom.test) == 2


def test_stanford40_splits(tmp_path):
    actions = ["applauding", "blowing_bubbles"]
    (tmp_path / "ImageSplits").mkdir(parents=True)
    (tmp_path / "ImageSplits" / "actions.txt").write_text(
        "action_name\tnumber_of_images\napplauding\t3\nblowing_bubbles\t3\n")
    for a in actions:
        names = [f"{a}_{j:03d}.jpg" for j in range(1, 4)]
        for n in names:
            _jpeg(tmp_path / "JPEGImages" / n, (0, 200, 0), size=(30, 60))
        (tmp_path / "ImageSplits" / f"{a}_train.txt").write_text("\n".join(names[:2]) + "\n")
        (tmp_path / "ImageSplits" / f"{a}_test.txt").write_text(names[2] + "\n")
    dom = load_domain("stanford40", root=tmp_path, size=16, val_fraction=0.0)
    assert dom.classes == actions and dom.train.y.tolist() == [0, 0, 1, 1]
    assert dom.test.y.tolist() == [0, 1] and dom.test.x.shape == (2, 3, 16, 16)


def test_missing_listed_image_is_named(tmp_path):
    (tmp_path / "Images" / "bar").mkdir(parents=True)
    (tmp_path / "TrainImages.txt").write_text("bar/gone.jpg\n")
    (tmp_path / "TestImages.txt").write_text("bar/gone.jpg\n")
    with pytest.raises(DataError, match="gone.jpg"):
        load_domain("indoor67", root=tmp_path)


# ---------------------------------------------------------------- folder:<path>

def test_folder_domain_modes_and_split(tmp_path):
    root = tmp_path / "imgs"
    for k, cls in enumerate(["cat", "dog"]):
        for j in range(10):
            p = root / cls / f"{j}.png"
            if j == 0:
                _jpeg(p, (10, 20, 30), mode="RGBA")
            elif j == 1:
                _jpeg(p, (80, 80, 80), mode="L")
            else:
                _jpeg(p, (100 * k, 50, 50))
    dom = load_domain(f"folder:{root}", size=16, val_fraction=0.0)
    assert dom.classes == ["cat", "dog"]
    assert torch.bincount(dom.test.y).tolist() == [2, 2]
    assert torch.bincount(dom.train.y).tolist() == [8, 8]
    assert dom.train.x.shape[1:] == (3, 16, 16)
    # adding an image changes the fingerprint, so the cache is not stale
    _jpeg(root / "dog" / "extra.png", (1, 2, 3))
    assert len(load_domain(f"folder:{root}", size=16, val_fraction=0.0).train) == 17


def test_folder_train_test_subfolders(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("a", "b"):
            for j in range(n):
                _jpeg(tmp_path / split / cls / f"{j}.jpg", (9, 9, 9))
    dom = load_domain(f"folder:{tmp_path}", size=8, val_fraction=0.0)
    assert len(dom.train) == 6 and len(dom.test) == 4 and dom.classes == ["a", "b"]


def test_folder_errors(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        load_domain(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="not a directory"):
        load_domain(f"folder:{tmp_path / 'nope'}")
    bad = tmp_path / "bad"
    _jpeg(bad / "x" / "ok.jpg", (1, 1, 1))
    (bad / "x" / "broken.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="broken.jpg"):
        load_domain(f"folder:{bad}")

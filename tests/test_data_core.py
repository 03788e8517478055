"""Core data behaviour: subsampling, splits, caching, errors, and the offline real domains."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from transferguard.data import (
    DOMAINS,
    Domain,
    describe_domains,
    load_domain,
    read_idx,
    stratified_split,
    subsample_per_class,
)
from transferguard.data._cache import cache_root
from transferguard.data._image import fit_size
from transferguard.errors import ConfigError, DataError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _cache(tmp_path, tmp_path_factory, monkeypatch):
    # one cache per test run, so the real datasets are decoded once
    monkeypatch.setenv("TRANSFERGUARD_CACHE", str(tmp_path_factory.getbasetemp() / "core-cache"))
    monkeypatch.setenv("TRANSFERGUARD_DATA", str(tmp_path / "data"))


def _counts(y: torch.Tensor, k: int) -> list[int]:
    return torch.bincount(y, minlength=k).tolist()


def test_subsample_per_class_exact_and_seeded():
    y = torch.arange(300) % 3
    y[:50] = 0  # imbalanced: class 0 has 100+ examples
    idx = subsample_per_class(y, 20, torch.Generator().manual_seed(5))
    assert _counts(y[idx], 3) == [20, 20, 20]
    assert torch.equal(idx, torch.sort(idx).values) and len(set(idx.tolist())) == 60
    again = subsample_per_class(y, 20, torch.Generator().manual_seed(5))
    other = subsample_per_class(y, 20, torch.Generator().manual_seed(6))
    assert torch.equal(idx, again) and not torch.equal(idx, other)
    assert torch.equal(subsample_per_class(y, None), torch.arange(300))
    with pytest.raises(ConfigError, match="class 1 has only"):
        subsample_per_class(y, 84)  # class 1 has 83, class 2 has 84


def test_stratified_split_disjoint_and_stratified():
    y = torch.arange(1000) % 10
    keep, held = stratified_split(y, 0.2, torch.Generator().manual_seed(0))
    assert set(keep.tolist()).isdisjoint(held.tolist())
    assert len(keep) + len(held) == 1000
    assert _counts(y[held], 10) == [20] * 10
    _, none = stratified_split(y, 0.0)
    assert len(none) == 0
    with pytest.raises(ConfigError):
        stratified_split(y, 1.0)


def test_load_mnist5k_splits_and_sizes():
    d = load_domain("mnist5k", n_train_per_class=50, n_test_per_class=20, val_fraction=0.2, seed=3)
    assert isinstance(d, Domain) and d.num_classes == 10 and d.image_size == 32
    assert _counts(d.train.y, 10) == [40] * 10
    assert _counts(d.val.y, 10) == [10] * 10
    assert _counts(d.test.y, 10) == [20] * 10
    assert d.train.x.dtype == torch.uint8 and d.train.x.shape[1:] == (3, 32, 32)
    # 28→32 zero padding, grey repeated to 3 channels, real digits (not constant)
    assert int(d.train.x[:, :, :2, :].max()) == 0 and int(d.train.x[:, :, :, -2:].max()) == 0
    assert torch.equal(d.train.x[:, 0], d.train.x[:, 2])
    assert int(d.train.x.max()) == 255 and float(d.train.x.float().std()) > 50
    # validation never overlaps training: no identical image appears in both
    tr = {bytes(v) for v in d.train.x.numpy()}
    assert not any(bytes(v) in tr for v in d.val.x.numpy())
    # same seed → same data; another seed → another subsample; test split fixed across seeds
    d2 = load_domain("mnist5k", n_train_per_class=50, n_test_per_class=20, val_fraction=0.2, seed=3)
    d3 = load_domain("mnist5k", n_train_per_class=50, n_test_per_class=20, val_fraction=0.2, seed=4)
    assert torch.equal(d.train.x, d2.train.x) and torch.equal(d.val.y, d2.val.y)
    assert not torch.equal(d.train.x, d3.train.x)
    full = load_domain("mnist5k", val_fraction=0.0)
    assert len(full.train) == 4000 and len(full.test) == 1000 and len(full.val) == 0
    assert full.meta["full_sizes"] == {"train": 4000, "test": 1000}


def test_mnist5k_train_and_test_disjoint():
    d = load_domain("mnist5k", val_fraction=0.1)
    train = {bytes(v) for v in torch.cat([d.train.x, d.val.x]).numpy()}
    overlap = sum(bytes(v) in train for v in d.test.x.numpy())
    assert overlap <= 2  # MNIST holds a few exact duplicates; a leaky split would share ~1,000
    assert _counts(d.test.y, 10) == [100] * 10


def test_ucidigits_resized_other_size():
    d = load_domain("ucidigits", size=28, val_fraction=0.1)
    assert d.train.x.shape[1:] == (3, 28, 28)
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    assert int(d.train.x.max()) > 200 and float(d.train.x.float().std()) > 30
    assert set(d.test.y.tolist()) == set(range(10))


def test_fit_size_pads_only_28_to_32():
    x = np.full((2, 28, 28), 200, np.uint8)
    assert fit_size(x, 32, pad_28_to_32=True)[0, 0, 0, 0] == 0
    resized = fit_size(x, 32)
    assert resized.shape == (2, 3, 32, 32) and resized[0, 0, 0, 0] == 200
    small = fit_size(np.full((1, 3, 96, 96), 77, np.uint8), 32)
    assert small.shape == (1, 3, 32, 32) and (small == 77).all()


def test_cache_round_trip_and_speed(tmp_path, monkeypatch):
    """A cached domain is not decoded again (the observable behind "fast": no wall clock)."""
    monkeypatch.setenv("TRANSFERGUARD_CACHE", str(tmp_path / "own-cache"))
    spec = DOMAINS["ucidigits"]
    decoded: list[int] = []

    def counting_loader(root, size, download):
        decoded.append(size)
        return spec.loader(root, size, download)

    monkeypatch.setitem(DOMAINS, "ucidigits", dataclasses.replace(spec, loader=counting_loader))
    a = load_domain("ucidigits", size=40)
    files = list((cache_root() / "domains").glob("ucidigits-*.npz"))
    assert len(files) == 1 and decoded == [40]
    b = load_domain("ucidigits", size=40)
    assert decoded == [40]  # served from the cache file: the decoder did not run again
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert a.classes == b.classes and b.source == a.source
    load_domain("ucidigits", size=36)  # other params → other entry
    assert len(list((cache_root() / "domains").glob("ucidigits-*.npz"))) == 2
    assert decoded == [40, 36]
    files[0].write_bytes(b"corrupt")  # an unreadable entry is rebuilt, not fatal
    c = load_domain("ucidigits", size=40)
    assert torch.equal(a.train.x, c.train.x) and decoded == [40, 36, 40]
    load_domain("ucidigits", size=40, cache=False)  # cache=False always decodes
    assert decoded == [40, 36, 40, 40]


def test_unknown_name_lists_domains():
    with pytest.raises(ConfigError) as exc:
        load_domain("mnistt")
    msg = str(exc.value)
    assert "mnistt" in msg and "mnist5k" in msg and "svhn" in msg and "folder:<path>" in msg


def test_bad_options_raise_config_error():
    with pytest.raises(ConfigError):
        load_domain("ucidigits", val_fraction=1.5)
    with pytest.raises(ConfigError):
        load_domain("ucidigits", size=4)
    with pytest.raises(ConfigError, match="cannot draw"):
        load_domain("ucidigits", n_train_per_class=10_000)
    with pytest.raises(ConfigError):
        load_domain("syndigits:lots")


@pytest.mark.parametrize("name, needle", [
    ("mnist", "train-images-idx3-ubyte"), ("usps", "usps.bz2"), ("svhn", "train_32x32.mat"),
    ("cifar10-9", "cifar-10-batches-py"), ("stl10-9", "stl10_binary"),
    ("cub200", "images.txt"), ("dogs", "train_list.mat"), ("flowers102", "setid.mat"),
    ("indoor67", "TrainImages.txt"), ("stanford40", "ImageSplits"),
])
def test_missing_data_says_what_and_how(tmp_path, name, needle):
    with pytest.raises(DataError) as exc:
        load_domain(name, root=tmp_path / "empty")
    assert needle in str(exc.value) and str(tmp_path / "empty") in str(exc.value)
    ok, reason = DOMAINS[name].available(tmp_path / "empty")
    assert not ok and needle in reason


def test_missing_fashion_names_debian_package(tmp_path):
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        load_domain("fashion", root=tmp_path)


def test_describe_domains_rows():
    rows = {r["name"]: r for r in describe_domains()}
    assert {"mnist5k", "ucidigits", "fashion", "syndigits", "mnist", "usps", "svhn", "cifar10-9",
            "stl10-9", "cub200", "dogs", "flowers102", "indoor67", "stanford40"} <= set(rows)
    assert rows["mnist5k"]["available"] and rows["ucidigits"]["available"]
    assert not rows["svhn"]["available"] and "train_32x32.mat" in rows["svhn"]["reason"]
    assert rows["cifar10-9"]["sizes"]["classes"] == 9
    assert rows["fashion"]["available"] == FASHION_DIR.is_dir()


def test_read_idx_plain_gz_and_corrupt(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 8, 3]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape) + arr.tobytes()
    (tmp_path / "a").write_bytes(raw)
    with gzip.open(tmp_path / "a.gz", "wb") as fh:
        fh.write(raw)
    assert np.array_equal(read_idx(tmp_path / "a"), arr)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    ints = np.array([1, -2, 70000], dtype=">i4")
    (tmp_path / "i").write_bytes(bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + ints.tobytes())
    assert read_idx(tmp_path / "i").tolist() == [1, -2, 70000]
    (tmp_path / "t").write_bytes(raw[:-3])
    with pytest.raises(DataError, match="IDX header says"):
        read_idx(tmp_path / "t")
    (tmp_path / "b").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="not an IDX"):
        read_idx(tmp_path / "b")


@pytest.mark.skipif(not FASHION_DIR.is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_real_data():
    d = load_domain("fashion", n_train_per_class=30, n_test_per_class=10, seed=1)
    assert d.classes[0] == "T-shirt/top" and d.num_classes == 10
    assert d.meta["full_sizes"] == {"train": 60000, "test": 10000}
    assert _counts(d.train.y, 10) == [27] * 10 and _counts(d.val.y, 10) == [3] * 10
    assert _counts(d.test.y, 10) == [10] * 10
    assert d.train.x.shape[1:] == (3, 32, 32) and int(d.train.x[:, :, :2].max()) == 0
    assert float(d.train.x.float().std()) > 40


def test_download_refused_where_no_downloader(tmp_path):
    with pytest.raises(DataError, match="cannot be downloaded automatically.*CUB_200_2011"):
        load_domain("cub200", root=tmp_path, download=True)


def test_domain_digest_names_the_bytes():
    a = load_domain("ucidigits", n_train_per_class=5, n_test_per_class=3)
    b = load_domain("ucidigits", n_train_per_class=5, n_test_per_class=3)
    assert a.digest() == b.digest() and len(a.digest()) == 64
    b.test.x[0, 0, 0, 0] ^= 1  # one bit of one test pixel
    assert a.digest() != b.digest()
    c = load_domain("ucidigits", n_train_per_class=6, n_test_per_class=3)
    assert c.digest() != a.digest()

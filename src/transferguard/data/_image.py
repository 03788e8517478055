"""Image-array helpers: IDX files, channel and size conversion, and decoding single image files.

Everything returns ``uint8`` arrays of shape (N, 3, size, size), the storage form of a
:class:`~transferguard.data.base.Split`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST / Fashion-MNIST format), gzip-compressed or not.

    The header is two zero bytes, a type code, the number of dimensions, then one big-endian
    int32 per dimension; the data follow in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 0
    if len(raw) - header != count * dtype.itemsize:
        raise DataError(f"{path}: IDX header says {shape} but the file holds "
                        f"{(len(raw) - header) // dtype.itemsize} values")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def find_file(directories: list[Path], names: list[str]) -> Path | None:
    """First existing ``directory/name`` (also trying ``name.gz``)."""
    for d in directories:
        for n in names:
            for cand in (d / n, d / f"{n}.gz"):
                if cand.is_file():
                    return cand
    return None


def to_nchw3(x: np.ndarray) -> np.ndarray:
    """(N,H,W) or (N,1,H,W) grey, or (N,3,H,W) colour → uint8 (N,3,H,W)."""
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"expected N×H×W or N×C×H×W images, got shape {x.shape}")
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return np.ascontiguousarray(x, dtype=np.uint8)


def fit_size(x: np.ndarray, size: int, *, pad_28_to_32: bool = False,
             chunk: int = 4096) -> np.ndarray:
    """Bring uint8 (N,C,H,W) square images to (N,3,size,size).

    28×28 digits are zero-padded by 2 pixels per side when ``size == 32`` and ``pad_28_to_32``
    (as the first paper did for MNIST/USPS); other sizes are resized bilinearly with
    anti-aliasing, which matters when shrinking (STL-10's 96 px → 32 px).
    """
    if x.ndim == 3:
        x = x[:, None]
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return to_nchw3(x)
    if pad_28_to_32 and (h, w) == (28, 28) and size == 32:
        return to_nchw3(np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2))))
    out = np.empty((n, c, size, size), dtype=np.uint8)
    for start in range(0, n, chunk):
        part = torch.from_numpy(np.ascontiguousarray(x[start:start + chunk])).float()
        part = F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=True)
        out[start:start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return to_nchw3(out)


def load_image(path: str | Path, size: int) -> np.ndarray:
    """Decode one image file to uint8 (3, size, size): RGB, shorter side resized, centre-cropped.

    Grey, palette and RGBA images are converted to RGB; an unreadable file raises
    :class:`DataError` naming it.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when possible
            img = img.convert("RGB")
            w, h = img.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0)
            left, top = (nw - size) // 2, (nh - size) // 2
            img = img.crop((left, top, left + size, top + size))
            arr = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise DataError(f"image file not found: {path}") from exc
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot read image file {path}: {exc}") from exc
    return np.ascontiguousarray(arr.transpose(2, 0, 1))

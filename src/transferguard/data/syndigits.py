"""SynDigits-style synthetic digits, rendered here from TrueType fonts.

The original SynDigits (Ganin & Lempitsky) are Windows-font digits on coloured backgrounds with
varied position, orientation, stroke and blur, flanked by neighbouring digits. This generator
follows that recipe with the fonts this machine has: matplotlib's bundled fonts always, plus any
system TrueType/OpenType fonts (e.g. Debian ``fonts-aenigma``), keeping only fonts whose ten digit
glyphs exist and render distinctly.

Every image ``i`` draws its randomness from ``numpy.random.default_rng([seed, 1, i])``, so the
output depends only on ``(n, seed, size, fonts)`` — not on the number of worker processes —
and the same arguments give identical bytes on the same machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .._io import atomic_write_text
from .._progress import progress_bar
from ..errors import ConfigError, DataError
from ._cache import cache_root

log = logging.getLogger(__name__)

#: Bump when the rendering recipe changes (part of every cache key).
GENERATOR_VERSION = 1
SYSTEM_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
_CHUNK = 500
_FONT_CACHE: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}


# ---------------------------------------------------------------- fonts

def _candidate_fonts(extra_dirs: Sequence[Path] = SYSTEM_FONT_DIRS) -> list[Path]:
    import matplotlib

    dirs = [Path(matplotlib.get_data_path()) / "fonts" / "ttf", *extra_dirs]
    found: set[Path] = set()
    for d in dirs:
        if d.is_dir():
            found.update(p.resolve() for p in d.rglob("*")
                         if p.suffix.lower() in {".ttf", ".otf"} and p.is_file())
    return sorted(found)


def _render_glyph(font: ImageFont.FreeTypeFont, text: str) -> np.ndarray:
    img = Image.new("L", (96, 96))
    ImageDraw.Draw(img).text((48, 48), text, font=font, fill=255, anchor="mm")
    return np.asarray(img) > 127


#: how many of a font's ten digits must match plain reference glyphs for it to be used
MIN_READABLE_DIGITS = 7
_REFERENCE_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf",
                    "DejaVuSansMono.ttf", "DejaVuSans-Oblique.ttf", "cmr10.ttf")
_REFS: list[np.ndarray | None] = []


def _glyph_feature(mask: np.ndarray) -> np.ndarray:
    """Ink cropped to its box, resized to 16×16, blurred, zero-mean unit-norm (for correlation)."""
    rows, cols = np.nonzero(mask)
    crop = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    img = Image.fromarray(crop.astype(np.uint8) * 255).resize((16, 16), Image.Resampling.BOX)
    v = np.asarray(img.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32).ravel()
    v = v - v.mean()
    return v / (np.linalg.norm(v) + 1e-6)


def _reference_templates() -> np.ndarray | None:
    """Digit templates (n_fonts·10 × 256, font-major) from matplotlib's plain fonts."""
    if not _REFS:
        import matplotlib

        d = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        feats = []
        for name in _REFERENCE_FONTS:
            if (d / name).is_file():
                font = ImageFont.truetype(str(d / name), 48)
                feats += [_glyph_feature(_render_glyph(font, k)) for k in "0123456789"]
        _REFS.append(np.stack(feats) if feats else None)
    return _REFS[0]


def font_renders_digits(path: str | os.PathLike) -> bool:
    """True when the font maps all ten digits and renders them as ten distinct, digit-sized,
    readable glyphs (at least :data:`MIN_READABLE_DIGITS` nearest to the right digit of plain
    reference fonts), which drops dingbat-like decorative fonts."""
    try:
        from fontTools.ttLib import TTFont

        with TTFont(str(path), lazy=True, fontNumber=0) as tt:
            cmap = tt.getBestCmap() or {}
        if any(ord(d) not in cmap for d in "0123456789"):
            return False
    except ImportError:  # fontTools comes with matplotlib; the render check below still runs
        pass
    except Exception:  # a corrupt or exotic font file: skip it
        return False
    try:
        font = ImageFont.truetype(str(path), 48)
        masks = [_render_glyph(font, d) for d in "0123456789"]
        missing = _render_glyph(font, "\U0010fffd")
    except (OSError, ValueError):
        return False
    for m in masks:
        ink = m.mean()
        if not 0.002 <= ink <= 0.5:  # blank or a filled block
            return False
        if missing.any() and (m ^ missing).sum() < 0.1 * m.sum():
            return False  # the "missing glyph" box
        rows, cols = np.nonzero(m)
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        if not 14 <= h <= 60:  # far from a digit-sized glyph at 48 px
            return False
        if m.sum() > 0.7 * h * w:  # a filled blob or square, not a stroke
            return False
        if abs(rows.mean() - 48) > 16 or abs(cols.mean() - 48) > 16:  # drawn off-centre
            return False
    for i in range(10):
        for j in range(i + 1, 10):
            if (masks[i] ^ masks[j]).sum() < 0.05 * max(masks[i].sum(), masks[j].sum()):
                return False
    # readable: most digits are nearest to the same digit of plain reference fonts
    refs = _reference_templates()
    if refs is None:
        return True
    feats = np.stack([_glyph_feature(m) for m in masks])
    nearest = (feats @ refs.T).reshape(10, -1, 10).max(axis=1).argmax(axis=1)
    return int((nearest == np.arange(10)).sum()) >= MIN_READABLE_DIGITS


def available_fonts(extra_dirs: Sequence[str | os.PathLike] | None = None) -> list[Path]:
    """Fonts usable for digits: matplotlib's bundled fonts plus system fonts, validated once.

    The validation result is cached in ``<cache>/syndigits/fonts-<hash>.json`` keyed by the
    candidate files' paths and sizes.
    """
    dirs = SYSTEM_FONT_DIRS if extra_dirs is None else tuple(Path(d) for d in extra_dirs)
    cands = _candidate_fonts(dirs)
    key = hashlib.sha1(json.dumps([(str(p), p.stat().st_size) for p in cands]).encode()).hexdigest()
    cache = cache_root() / "syndigits" / f"fonts-{key[:16]}.json"
    if cache.is_file():
        try:
            return [Path(p) for p in json.loads(cache.read_text())]
        except (OSError, ValueError):
            pass
    good = [p for p in progress_bar(cands, desc="checking fonts", disable=len(cands) < 50, leave=False)
            if font_renders_digits(p)]
    log.info("syndigits: %d of %d candidate fonts render all ten digits", len(good), len(cands))
    try:
        atomic_write_text(cache, json.dumps([str(p) for p in good]))
    except OSError as exc:
        log.warning("could not cache the font list at %s: %s", cache, exc)
    return good


def fonts_fingerprint(fonts: Sequence[str | os.PathLike]) -> str:
    """Short hash of the font files (names and sizes), part of the synthetic data's identity."""
    items = [(Path(f).name, Path(f).stat().st_size) for f in fonts]
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- rendering

def _font(path: str, px: int) -> ImageFont.FreeTypeFont:
    key = (path, px)
    f = _FONT_CACHE.get(key)
    if f is None:
        if len(_FONT_CACHE) > 4096:
            _FONT_CACHE.clear()
        f = _FONT_CACHE[key] = ImageFont.truetype(path, px)
    return f


_REF_PX = 64
_HEIGHTS: dict[tuple[str, int], float] = {}


def _digit_height(path: str, digit: int) -> float:
    """Ink height of ``digit`` at :data:`_REF_PX` pixels (fonts differ widely for one size)."""
    key = (path, digit)
    h = _HEIGHTS.get(key)
    if h is None:
        box = _font(path, _REF_PX).getmask(str(digit)).getbbox() or (0, 0, 0, _REF_PX)
        h = _HEIGHTS[key] = float(max(box[3] - box[1], 16))
    return h


def _luma(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background and foreground RGB with at least ~25% luminance contrast."""
    bg = rng.integers(0, 256, 3).astype(np.float32)
    for _ in range(20):
        fg = rng.integers(0, 256, 3).astype(np.float32)
        if abs(_luma(fg) - _luma(bg)) >= 64:
            return bg, fg
    return bg, np.where(_luma(bg) > 127, bg * 0.15, 255 - (255 - bg) * 0.15).astype(np.float32)


_WIDTHS: dict[tuple[str, int, int, int], float] = {}


def _width(path: str, px: int, digit: int, stroke: int) -> float:
    key = (path, px, digit, stroke)
    w = _WIDTHS.get(key)
    if w is None:
        if len(_WIDTHS) > 100_000:
            _WIDTHS.clear()
        box = _font(path, px).getbbox(str(digit), anchor="mm", stroke_width=stroke)
        w = _WIDTHS[key] = float(box[2] - box[0])
    return w


def _render_one(i: int, label: int, seed: int, size: int, fonts: Sequence[str]) -> np.ndarray:
    rng = np.random.default_rng([seed, 1, i])
    c = max(round(1.5 * size), 48)  # render above the output size and shrink: smoother edges
    font_path = fonts[int(rng.integers(len(fonts)))]
    # scale the font so the labelled digit's ink is 45–80% of the frame height, whatever the font
    target = rng.uniform(0.45, 0.8) * c
    px = int(round(target / _digit_height(font_path, label) * _REF_PX / 2)) * 2
    px = min(max(px, 8), 4 * c)
    font = _font(font_path, px)
    stroke = int(rng.integers(1, 3)) if rng.random() < 0.3 else 0

    # draw on a 2c×2c layer centred on the frame so that neighbours can be cut by its edges
    layer = Image.new("L", (2 * c, 2 * c))
    draw = ImageDraw.Draw(layer)
    cx = c + rng.uniform(-0.08, 0.08) * c
    cy = c + rng.uniform(-0.08, 0.08) * c
    draw.text((cx, cy), str(label), font=font, fill=255, anchor="mm", stroke_width=stroke,
              stroke_fill=255)
    w0 = _width(font_path, px, label, stroke)
    for side in (-1, 1):  # neighbouring distractor digits, usually cut by the frame
        if rng.random() < 0.8:
            d = int(rng.integers(10))
            gap = rng.uniform(0.03, 0.15) * c
            x = cx + side * (w0 / 2 + gap + _width(font_path, px, d, stroke) / 2)
            draw.text((x, cy + rng.uniform(-0.05, 0.05) * c), str(d), font=font, fill=255,
                      anchor="mm", stroke_width=stroke, stroke_fill=255)
    # rotate about the digit's centre straight into the c×c frame: output (u, v) samples the
    # layer at R(angle)·((u, v) + c/2 − centre) + centre
    a = np.deg2rad(rng.uniform(-15, 15))
    cos, sin = float(np.cos(a)), float(np.sin(a))
    ox, oy = c / 2 - cx, c / 2 - cy
    matrix = (cos, sin, cos * ox + sin * oy + cx, -sin, cos, -sin * ox + cos * oy + cy)
    mask = layer.transform((c, c), Image.Transform.AFFINE, matrix,
                           resample=Image.Resampling.BILINEAR)

    bg, fg = _colours(rng)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-0.5, 0.5, c, dtype=np.float32)
    t = (np.cos(theta) * ramp[None, :] + np.sin(theta) * ramp[:, None])[..., None]
    bg_img = (bg + t * rng.normal(0, 40, 3).astype(np.float32)).clip(0, 255).astype(np.uint8)
    fg_img = Image.new("RGB", (c, c), tuple(int(v) for v in fg))
    img = Image.composite(fg_img, Image.fromarray(bg_img), mask)
    img = img.resize((size, size), Image.Resampling.BOX)
    sigma = rng.uniform(0, 1.0) * size / 32
    if sigma > 0.25:
        img = img.filter(ImageFilter.GaussianBlur(sigma))
    arr = np.asarray(img, dtype=np.float32)
    arr = arr + rng.normal(0, rng.uniform(0, 8), arr.shape).astype(np.float32)
    return arr.clip(0, 255).round().astype(np.uint8).transpose(2, 0, 1)


def _render_chunk(args: tuple[int, np.ndarray, int, int, list[str]]) -> np.ndarray:
    start, labels, seed, size, fonts = args
    return np.stack([_render_one(start + k, int(lab), seed, size, fonts)
                     for k, lab in enumerate(labels)])


def syndigit_labels(n: int, seed: int) -> np.ndarray:
    """Balanced labels (``n // 10`` or one more per digit) in a seeded random order."""
    return np.random.default_rng([seed, 0]).permutation(np.arange(n) % 10).astype(np.int64)


def generate_syndigits(n: int, seed: int, size: int = 32,
                       fonts: Sequence[str | os.PathLike] | None = None, *,
                       workers: int | None = None,
                       progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``n`` SynDigits-style images: ``(x uint8 n×3×size×size, y int64 n)``.

    Deterministic in ``(n, seed, size, fonts)``; ``workers`` processes share the work (default:
    all cores for large ``n``) without changing the result.
    """
    if n < 0 or seed < 0 or size < 8:
        raise ConfigError(f"need n >= 0, seed >= 0 and size >= 8 (got n={n}, seed={seed}, size={size})")
    font_list = [str(f) for f in (available_fonts() if fonts is None else fonts)]
    if not font_list:
        raise DataError("syndigits: no usable font found (matplotlib's bundled fonts are missing?)")
    labels = syndigit_labels(n, seed)
    chunks = [(s, labels[s:s + _CHUNK], seed, size, font_list) for s in range(0, n, _CHUNK)]
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if n >= 4 * _CHUNK else 1
    x = np.empty((n, 3, size, size), dtype=np.uint8)
    bar = progress_bar(total=n, desc="rendering syndigits", unit="img", disable=not progress or n < 1000,
               leave=False)
    with bar:
        if workers <= 1 or len(chunks) <= 1:
            results = map(_render_chunk, chunks)
            for (s, lab, *_), part in zip(chunks, results, strict=True):
                x[s:s + len(lab)] = part
                bar.update(len(lab))
        else:
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
                for (s, lab, *_), part in zip(chunks, pool.map(_render_chunk, chunks), strict=True):
                    x[s:s + len(lab)] = part
                    bar.update(len(lab))
    return torch.from_numpy(x), torch.from_numpy(labels)

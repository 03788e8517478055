"""The SynDigits-style generator: fonts, determinism, balance and that images look like data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferguard.data import available_fonts, generate_syndigits, load_domain
from transferguard.data.syndigits import _render_one, font_renders_digits
from transferguard.errors import ConfigError


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # one cache for the module: the validated font list is reused across tests
    monkeypatch.setenv("TRANSFERGUARD_CACHE", str(tmp_path_factory.getbasetemp() / "syn-cache"))


def test_fonts_include_matplotlib_and_reject_symbol_fonts():
    fonts = available_fonts()
    names = {f.name for f in fonts}
    assert "DejaVuSans.ttf" in names
    assert "cmex10.ttf" not in names and "STIXSizOneSymReg.ttf" not in names
    assert "LastResortHE-Regular.ttf" not in names
    from pathlib import Path

    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    assert font_renders_digits(ttf / "DejaVuSerif.ttf")
    assert not font_renders_digits(ttf / "cmsy10.ttf")
    assert available_fonts() == fonts  # second call comes from the cached list


def test_deterministic_per_seed_and_worker_count():
    a_x, a_y = generate_syndigits(60, seed=3, workers=1)
    b_x, b_y = generate_syndigits(60, seed=3, workers=1)
    c_x, c_y = generate_syndigits(60, seed=4, workers=1)
    assert torch.equal(a_x, b_x) and torch.equal(a_y, b_y)
    assert not torch.equal(a_x, c_x)
    # two worker processes give the same bytes as rendering each image on its own
    d_x, d_y = generate_syndigits(600, seed=3, workers=2, progress=False)
    fonts = [str(f) for f in available_fonts()]
    for i in (0, 499, 500, 599):
        alone = _render_one(i, int(d_y[i]), 3, 32, fonts)
        assert np.array_equal(d_x[i].numpy(), alone)


def test_images_balanced_varied_and_sized():
    x, y = generate_syndigits(200, seed=0, size=40, workers=1)
    assert x.shape == (200, 3, 40, 40) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == [20] * 10
    flat = x.float().flatten(1)
    assert (flat.std(dim=1) > 10).all()  # every image has a visible digit on its background
    assert len({bytes(v) for v in x.numpy()}) == 200
    assert int(x.min()) < 30 and int(x.max()) > 225
    # colour images: channels differ
    assert (x[:, 0].float() - x[:, 1].float()).abs().mean() > 10


def test_digit_is_centred_and_class_means_differ():
    # the label digit sits in the middle: class-mean foreground maps differ between digits.
    x, y = generate_syndigits(400, seed=1, workers=1)
    g = x.float().mean(dim=1)  # grey
    # polarity-normalise: foreground = far from the border colour
    border = torch.cat([g[:, 0], g[:, -1], g[:, :, 0], g[:, :, -1]], dim=1).median(dim=1).values
    fg = (g - border[:, None, None]).abs()
    centre = fg[:, 8:24, 10:22].mean(dim=(1, 2))
    corners = fg[:, :5, :5].mean(dim=(1, 2))
    assert (centre > corners).float().mean() > 0.7  # distractors sometimes reach a corner
    assert centre.mean() > 2 * corners.mean()
    means = torch.stack([fg[y == k].mean(0) for k in range(10)])
    one, eight = means[1], means[8]
    assert (one - eight).abs().mean() > 3  # '1' and '8' have clearly different ink


def test_syndigits_domain_param_and_cache():
    d = load_domain("syndigits:200:100", val_fraction=0.1)
    assert len(d.train) + len(d.val) == 200 and len(d.test) == 100
    assert torch.bincount(d.test.y).tolist() == [10] * 10
    d2 = load_domain("syndigits:200:100", val_fraction=0.1)
    assert torch.equal(d.train.x, d2.train.x)
    with pytest.raises(ConfigError):
        load_domain("syndigits:5")
    with pytest.raises(ConfigError):
        generate_syndigits(10, seed=-1)

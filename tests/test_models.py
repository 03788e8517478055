"""Architectures: layout contract, forward consistency, dropout, heads, registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferguard.errors import ConfigError
from transferguard.models import (
    ARCHS,
    SYMMETRIC,
    TGModel,
    WideResNet,
    arch_info,
    create_model,
    list_archs,
)

torch.set_num_threads(1)

# (arch, input side, expected number of stages)
CHEAP = [("dtn", 32, 3), ("wrn-16-4", 32, 3), ("resnet18", 32, 4), ("mobilenet_v2", 32, 5),
         ("efficientnet_lite0", 64, 5)]


def _x(side: int, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def built() -> dict[str, TGModel]:
    torch.manual_seed(0)
    return {arch: create_model(arch, 7) for arch, _, _ in CHEAP}


@pytest.mark.parametrize(("arch", "side", "n_stages"), CHEAP)
def test_forward_shapes_and_consistency(built, arch, side, n_stages):
    model = built[arch].eval()
    x = _x(side)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        outs, feats2 = model.forward_stages(x)
    assert logits.shape == (2, 7)
    assert feats.shape == (2, model.feature_dim)
    assert len(outs) == n_stages == len(model.stages) == len(model.stage_names)
    assert all(o.dim() == 4 and o.shape[0] == 2 for o in outs)
    # Stage resolutions never grow.
    sides = [o.shape[-1] for o in outs]
    assert sides == sorted(sides, reverse=True)
    torch.testing.assert_close(feats2, feats)
    torch.testing.assert_close(model.head(feats), logits)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(("arch", "side", "n_stages"), CHEAP)
def test_spatial_dropout_and_eval_determinism(built, arch, side, n_stages):
    model = built[arch]
    model.set_spatial_dropout(0.5)
    try:
        assert all(isinstance(d, nn.Dropout2d) and d.p == 0.5 for d in model.drop)
        assert model.config()["spatial_dropout"] == 0.5
        x = _x(side)
        model.eval()
        with torch.no_grad():
            a, b = model(x), model(x)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        model.train()
        torch.manual_seed(1)
        with torch.no_grad():
            outs, _ = model.forward_stages(x)
        # Dropout2d zeroes whole channels of the stage output in train mode.
        zero_channels = (outs[0].flatten(2).abs().sum(-1) == 0).float().mean()
        assert 0.2 < zero_channels < 0.8
    finally:
        model.set_spatial_dropout(0.0)
        model.eval()
    assert all(isinstance(d, nn.Identity) for d in model.drop)


@pytest.mark.parametrize(("arch", "side", "n_stages"), CHEAP)
def test_reset_head_and_parameter_split(built, arch, side, n_stages):
    model = create_model(arch, 4).eval()
    x = _x(side)
    with torch.no_grad():
        before = model.forward_features(x)
    backbone = {id(p) for p in model.backbone_parameters()}
    head = {id(p) for p in model.head_parameters()}
    assert backbone and head and not backbone & head
    assert backbone | head == {id(p) for p in model.parameters()}
    assert all(not n.startswith("head.") for n, _ in model.backbone_named_parameters())
    model.reset_head(11)
    assert model.num_classes == 11 and isinstance(model.head, nn.Linear)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), before)
        assert model(x).shape == (2, 11)


def test_heavy_resnets_single_tiny_forward():
    for arch, dim in (("resnet50", 2048), ("resnet101", 2048)):
        model = create_model(arch, 3).eval()
        assert len(model.stages) == 4 and model.feature_dim == dim
        with torch.no_grad():
            assert model(_x(32, n=1)).shape == (1, 3)


def test_wideresnet_defaults_and_validation():
    model = create_model("wrn", 10)
    cfg = model.config()
    assert (cfg["depth"], cfg["width"], cfg["drop_rate"]) == (28, 10, 0.0)
    assert model.feature_dim == 640 and len(model.stages) == 3
    assert len(model.stages[0]) == 4  # (28 - 4) / 6 blocks per group
    torch.testing.assert_close(model.normalize.mean.flatten(), torch.tensor(SYMMETRIC[0]))
    # The normalisation maps [0, 1] to [-1, 1].
    torch.testing.assert_close(model.normalize(torch.ones(1, 3, 1, 1)).flatten(), torch.ones(3))
    assert create_model("wrn-28-10", 10).config() == cfg
    with pytest.raises(ValueError, match="6n"):
        WideResNet(10, depth=27)


def test_registry_names_errors_and_info():
    names = list_archs()
    for arch in ("dtn", "wrn", "wrn-28-10", "wrn-16-4", "wrn-16-2", "resnet18", "resnet50", "resnet101",
                 "mobilenet_v2", "efficientnet_lite0"):
        assert arch in names and arch in ARCHS
    with pytest.raises(ConfigError, match="unknown architecture 'vgg99'.*resnet18"):
        create_model("vgg99", 10)
    with pytest.raises(ConfigError, match="bad options"):
        create_model("dtn", 10, depth=3)
    with pytest.raises(ConfigError, match="no published pre-trained"):
        create_model("dtn", 10, pretrained=True)
    with pytest.raises(ConfigError):
        create_model("dtn", 0)
    info = arch_info("efficientnet_lite0")
    assert info["pretrained_offline"] is True and info["num_stages"] == 5
    assert info["mean"] == pytest.approx([127 / 255] * 3)
    assert arch_info("wrn-16-4")["normalization"] == "symmetric"
    assert arch_info("resnet18")["input_size"] == 224
    with pytest.raises(ConfigError):
        arch_info("nope")


def test_create_model_applies_spatial_dropout_and_config_rebuilds():
    model = create_model("wrn-16-4", 5, spatial_dropout=0.1)
    assert all(isinstance(d, nn.Dropout2d) for d in model.drop)
    cfg = model.config()
    rebuilt = create_model(cfg.pop("arch"), cfg.pop("num_classes"), **cfg)
    assert rebuilt.config() == model.config()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}

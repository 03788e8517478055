"""torchvision ResNet-18/50/101 and MobileNetV2 in the TGModel layout, ImageNet normalisation.

The wrappers reuse torchvision's own modules, so a torchvision state dict loads through an exact
key map (computed by tensor identity, see :func:`tensor_key_map`). Layouts:

* ResNet: stem = conv1-bn1-relu-maxpool, stages = layer1..layer4, neck = avgpool-flatten, head = fc.
* MobileNetV2 (split as in the Renofeation code, a new stage after each stride-2 group):
  stem = identity, stages = features[0:4], [4:7], [7:11], [11:17], [17:19] (the last one ends with
  the 1×1 conv to 1280 channels), neck = avgpool-flatten-Dropout(0.2), head = classifier[1].

ImageNet weights never download: ``pretrained`` is a local file, or ``True`` for the file torch
hub would have cached (``torch.hub.get_dir()/checkpoints/<torchvision file name>``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torchvision
from torch import nn

from ._norms import IMAGENET
from ._pretrained import find_hub_checkpoint, load_pretrained_file, tensor_key_map
from .base import Normalize, TGModel

log = logging.getLogger(__name__)

TORCHVISION_ARCHS = ("resnet18", "resnet50", "resnet101", "mobilenet_v2")

Pretrained = bool | str | os.PathLike | None


def torchvision_weight_files(arch: str) -> list[str]:
    """File names of torchvision's published ImageNet weights for ``arch`` (default first)."""
    enum = torchvision.models.get_model_weights(arch)
    default = enum.DEFAULT
    members = [default] + [w for w in enum if w is not default]
    return [Path(w.url).name for w in members]


class TorchvisionModel(TGModel):
    """A torchvision classifier rearranged into stem/stages/neck/head (see the module docstring)."""

    input_size = 224

    def __init__(self, arch: str, num_classes: int = 1000, *, pretrained: Pretrained = None,
                 normalization: tuple[Sequence[float], Sequence[float]] = IMAGENET) -> None:
        super().__init__()
        if arch not in TORCHVISION_ARCHS:
            raise ValueError(f"unsupported torchvision architecture {arch!r}")
        self.arch = arch
        self._normalization = (tuple(normalization[0]), tuple(normalization[1]))
        self.normalize = Normalize(*normalization)
        net = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
        if arch.startswith("resnet"):
            self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
            self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
            self.neck = nn.Sequential(net.avgpool, nn.Flatten())
            self.head = net.fc
            names = ["layer1", "layer2", "layer3", "layer4"]
        else:
            f = net.features
            self.stem = nn.Identity()
            self.stages = nn.ModuleList([f[0:4], f[4:7], f[7:11], f[11:17], f[17:19]])
            self.neck = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), net.classifier[0])
            self.head = net.classifier[1]
            names = ["layer1", "layer2", "layer3", "layer4", "layer5"]
        #: torchvision key -> TGModel key, for loading torchvision state dicts.
        self.source_key_map = tensor_key_map(net, self)
        self._finish(names)
        if pretrained:
            path = (find_hub_checkpoint(arch, torchvision_weight_files(arch))
                    if pretrained is True else pretrained)
            load_pretrained_file(self, path)

    def config(self) -> dict:
        cfg = super().config()
        if self._normalization != (tuple(IMAGENET[0]), tuple(IMAGENET[1])):
            cfg["normalization"] = [list(self._normalization[0]), list(self._normalization[1])]
        return cfg


def resnet18(num_classes: int = 1000, *, pretrained: Pretrained = None, **kw) -> TorchvisionModel:
    """torchvision ResNet-18 in the TGModel layout."""
    return TorchvisionModel("resnet18", num_classes, pretrained=pretrained, **kw)


def resnet50(num_classes: int = 1000, *, pretrained: Pretrained = None, **kw) -> TorchvisionModel:
    """torchvision ResNet-50 in the TGModel layout."""
    return TorchvisionModel("resnet50", num_classes, pretrained=pretrained, **kw)


def resnet101(num_classes: int = 1000, *, pretrained: Pretrained = None, **kw) -> TorchvisionModel:
    """torchvision ResNet-101 in the TGModel layout."""
    return TorchvisionModel("resnet101", num_classes, pretrained=pretrained, **kw)


def mobilenet_v2(num_classes: int = 1000, *, pretrained: Pretrained = None,
                 **kw) -> TorchvisionModel:
    """torchvision MobileNetV2 in the TGModel layout (5 stages as in Renofeation)."""
    return TorchvisionModel("mobilenet_v2", num_classes, pretrained=pretrained, **kw)

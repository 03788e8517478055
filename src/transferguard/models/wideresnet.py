"""Pre-activation WideResNet (Zagoruyko & Komodakis), the second architecture of paper 1.

WRN-d-k has ``(d - 4) / 6`` basic blocks in each of three groups of widths ``16k, 32k, 64k``;
paper 1 uses WRN-28-10 with no dropout on 32×32 inputs rescaled to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._norms import SYMMETRIC
from .base import Normalize, TGModel


class PreActBlock(nn.Module):
    """BN-ReLU-conv3×3-BN-ReLU-(dropout)-conv3×3 with an identity or 1×1-conv shortcut.

    When the width or stride changes, the shortcut taps the pre-activated input (as in the
    reference WRN code), so both branches see the same normalised tensor.
    """

    def __init__(self, cin: int, cout: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = cin == cout and stride == 1
        self.shortcut = (nn.Identity() if self.equal_in_out
                         else nn.Conv2d(cin, cout, 1, stride=stride, padding=0, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = self.conv1(act)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        # Identity shortcut adds the raw input; a projection shortcut uses the activated one.
        return out + (x if self.equal_in_out else self.shortcut(act))


def _group(n: int, cin: int, cout: int, stride: int, drop_rate: float) -> nn.Sequential:
    return nn.Sequential(*[PreActBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1,
                                       drop_rate) for i in range(n)])


class WideResNet(TGModel):
    """WRN-depth-width: stem conv3×3(3→16), three groups (the stages), neck BN-ReLU-avgpool."""

    arch = "wrn"
    input_size = 32
    channels_last_cpu = True  # ≈ 1.3× a step on the CPU (WRN-16-2, one-off timing)

    def __init__(self, num_classes: int = 10, depth: int = 28, width: int = 10,
                 drop_rate: float = 0.0,
                 normalization: tuple[Sequence[float], Sequence[float]] = SYMMETRIC) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1, got {depth}")
        if width < 1:
            raise ValueError(f"WideResNet width must be >= 1, got {width}")
        self.depth, self.width, self.drop_rate = int(depth), int(width), float(drop_rate)
        self._normalization = (tuple(normalization[0]), tuple(normalization[1]))
        n = (depth - 4) // 6
        widths = [16, 16 * width, 32 * width, 64 * width]
        self.normalize = Normalize(*normalization)
        self.stem = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.stages = nn.ModuleList([
            _group(n, widths[0], widths[1], 1, drop_rate),
            _group(n, widths[1], widths[2], 2, drop_rate),
            _group(n, widths[2], widths[3], 2, drop_rate),
        ])
        self.neck = nn.Sequential(
            nn.BatchNorm2d(widths[3]),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(widths[3], num_classes)
        self._init_weights()
        self._finish(["block1", "block2", "block3"])

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def config(self) -> dict:
        cfg = super().config()
        cfg.update(depth=self.depth, width=self.width, drop_rate=self.drop_rate)
        if self._normalization != (tuple(SYMMETRIC[0]), tuple(SYMMETRIC[1])):
            cfg["normalization"] = [list(self._normalization[0]), list(self._normalization[1])]
        return cfg

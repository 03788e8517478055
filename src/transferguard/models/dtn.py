"""DTN: the 5-layer digit CNN of the first paper (AttackTransferLearning), 32×32 inputs."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ._norms import SYMMETRIC
from .base import Normalize, TGModel


def _conv_block(cin: int, cout: int, p_drop: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=5, stride=2, padding=2),
        nn.BatchNorm2d(cout),
        nn.Dropout2d(p_drop),
        nn.ReLU(inplace=True),
    )


class DTN(TGModel):
    """Conv(3→64)-Conv(64→128)-Conv(128→256), each k5 s2 p2 + BN + Dropout2d + ReLU,
    then Linear(4096→512)-BN1d-ReLU-Dropout(0.5) (the penultimate features) and Linear(512→classes).

    Normalisation is the paper's [-1, 1] rescaling, done inside the model.
    """

    arch = "dtn"
    input_size = 32

    def __init__(self, num_classes: int = 10,
                 normalization: tuple[Sequence[float], Sequence[float]] = SYMMETRIC) -> None:
        super().__init__()
        self.normalize = Normalize(*normalization)
        self.stem = nn.Identity()
        self.stages = nn.ModuleList([
            _conv_block(3, 64, 0.1),
            _conv_block(64, 128, 0.3),
            _conv_block(128, 256, 0.5),
        ])
        self.neck = nn.Sequential(
            nn.Flatten(),
            nn.Linear(256 * 4 * 4, 512),
            nn.BatchNorm1d(512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
        )
        self.head = nn.Linear(512, num_classes)
        self._finish(["conv1", "conv2", "conv3"])

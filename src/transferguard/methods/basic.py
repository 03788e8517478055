"""Weight-transfer baselines: re-training from scratch, fine-tuning, CommonInit and the linear probe."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models.base import TGModel
from .base import TransferMethod, _groups

if TYPE_CHECKING:
    from ..training.config import TrainConfig


class Scratch(TransferMethod):
    """Random initialisation, no transfer: paper 1's "Scratch", Renofeation's "re-training".

    Every layer is re-drawn with its default initialiser (global torch RNG), whatever weights the
    model arrived with; the source model, if given, is ignored.
    """

    name = "scratch"
    init_from_source = False


class FineTune(TransferMethod):
    """Fine-tuning: start from the source weights and train every layer.

    The head is re-initialised when the class counts differ, or always with ``reset_head=True``
    (paper 1's FT keeps the digit head when source and target share the 10 digit classes).
    """

    name = "ft"

    def __init__(self, *, reset_head: bool = False, dropout: float | None = None,
                 swa: bool | None = None) -> None:
        super().__init__(dropout=dropout, swa=swa)
        self.new_head = bool(reset_head)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "reset_head": self.new_head}


class CommonInit(FineTune):
    """Paper 1's CommonInit: fine-tuning whose initial weights come from a *third* model C.

    It trains exactly like :class:`FineTune`; the experiment passes model C as ``source`` (for
    both A and B). The difference is recorded in :attr:`info` so results say where B came from.
    """

    name = "commoninit"

    def prepare(self, model: TGModel, source: TGModel | None, num_classes: int) -> TGModel:
        model = super().prepare(model, source, num_classes)
        self.info["init_origin"] = "third model (CommonInit)"
        return model


class LinearProbe(TransferMethod):
    """Linear probe: frozen source backbone (weights and BN statistics), only a new head trains.

    The backbone's parameters get ``requires_grad = False`` and the whole model stays in eval
    mode during training, so BN running statistics and dropout never act on the backbone.
    """

    name = "linear"
    new_head = True
    updates_bn_stats = False

    def __init__(self, *, dropout: float | None = None, swa: bool | None = None) -> None:
        super().__init__(dropout=dropout, swa=swa)

    def prepare(self, model: TGModel, source: TGModel | None, num_classes: int) -> TGModel:
        model = super().prepare(model, source, num_classes)
        for p in model.backbone_parameters():
            p.requires_grad_(False)
        for p in model.head_parameters():
            p.requires_grad_(True)
        return model

    def parameter_groups(self, model: TGModel, config: TrainConfig) -> list[dict[str, Any]]:
        head_wd = config.weight_decay if config.head_weight_decay is None else config.head_weight_decay
        return [g for g in _groups(model, config.weight_decay, head_wd) if g["name"] == "head"]

    def train_mode(self, model: TGModel) -> None:
        model.eval()

"""DELTA with channel attention (Li et al., ICLR 2019), the original paper's variant."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import to_float
from ..errors import ConfigError
from ..models.base import TGModel
from .delta import FeatureDistillation, check_stage_shapes

if TYPE_CHECKING:
    from ..data.base import Split

log = logging.getLogger(__name__)


class DeltaAttention(FeatureDistillation):
    """Attention-weighted feature distance toward the frozen source model.

    Regulariser: ``lambda_feat * sum_j sum_c W_jc * mean_{batch, positions} (s_jc - t_jc)^2``,
    with ``s_jc``/``t_jc`` channel ``c`` of stage ``j`` in the student/teacher. As in DELTA, the
    weight of a channel measures how much the teacher's loss grows when that channel is removed:
    ``W_j = softmax_c((L(teacher without channel c of stage j) - L(teacher)) / temperature)``.

    How we compute it (documented approximations of the paper, which is per-example):

    * the teacher's head is for the *source* labels, so a linear probe is first fitted on the
      teacher's penultimate features of a calibration set (L-BFGS, small L2), and ``L`` is its
      cross-entropy on the *target* labels;
    * the weights are computed once, before training, on ``attention_samples`` training images
      (the first ones of the split, a deterministic choice) and then kept fixed;
    * a channel is removed by zeroing it in the stage output and running the rest of the network;
    * the squared distance is averaged over positions instead of summed (a constant absorbed in
      ``lambda_feat``); with uniform weights the term equals the plain ``delta`` MSE.

    Cost: one partial forward of ``attention_samples`` images per channel of every stage.
    """

    name = "delta-attention"
    default_lambda_feat = 0.1

    def __init__(self, *, temperature: float = 1.0, attention_samples: int = 128,
                 probe_steps: int = 100, reset_head: bool = False,
                 dropout: float | None = None, swa: bool | None = None,
                 lambda_feat: float | None = None) -> None:
        super().__init__(dropout=dropout, swa=swa, lambda_feat=lambda_feat)
        if temperature <= 0 or attention_samples < 1 or probe_steps < 1:
            raise ConfigError("delta-attention: temperature must be > 0, attention_samples and "
                              "probe_steps >= 1")
        self.temperature = float(temperature)
        self.attention_samples = int(attention_samples)
        self.probe_steps = int(probe_steps)
        self.new_head = bool(reset_head)
        #: One weight vector per stage (sums to 1), set by :meth:`setup`.
        self.channel_weights: list[torch.Tensor] = []

    def options(self) -> dict[str, Any]:
        return {**super().options(), "temperature": self.temperature,
                "attention_samples": self.attention_samples, "probe_steps": self.probe_steps,
                "reset_head": self.new_head}

    # ------------------------------------------------------------------ attention
    def setup(self, model: TGModel, teacher: TGModel | None, train: Split,
              device: torch.device) -> None:
        if self.channel_weights:
            return  # restored from a checkpoint or computed before
        if teacher is None:
            raise ConfigError("delta-attention needs teacher=<source model> in fit()")
        n = min(self.attention_samples, len(train))
        x = to_float(train.x[:n], device)
        y = train.y[:n].to(device)
        self.channel_weights = [w.cpu() for w in channel_attention(
            teacher, x, y, num_classes=model.num_classes, temperature=self.temperature,
            probe_steps=self.probe_steps)]
        log.info("delta-attention: channel weights from %d images, max weight per stage %s", n,
                 [round(float(w.max()), 4) for w in self.channel_weights])

    def regularizer(self, model: TGModel, x: torch.Tensor, stage_outs: list[torch.Tensor],
                    feats: torch.Tensor, teacher_stage_outs: list[torch.Tensor] | None
                    ) -> torch.Tensor:
        teacher = check_stage_shapes(stage_outs, teacher_stage_outs, self.name)
        if len(self.channel_weights) != len(stage_outs):
            raise ConfigError("delta-attention: channel weights missing; fit() computes them in setup()")
        total = feats.new_zeros(())
        for j, (s, t) in enumerate(zip(stage_outs, teacher, strict=True)):
            w = self.channel_weights[j]
            if w.device != s.device:
                w = self.channel_weights[j] = w.to(s.device)
            dims = [d for d in range(s.ndim) if d != 1]
            per_channel = (s - t.detach()).pow(2).mean(dim=dims)
            total = total + (w * per_channel).sum()
        return self.lambda_feat * total

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"attention.{j}": w.detach().cpu() for j, w in enumerate(self.channel_weights)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        keys = sorted((k for k in state if k.startswith("attention.")), key=lambda k: int(k[10:]))
        self.channel_weights = [state[k].clone() for k in keys]


def _forward_from(model: TGModel, stage: int, h: torch.Tensor) -> torch.Tensor:
    """Penultimate features from the output of ``stage`` onward."""
    for s, d in zip(model.stages[stage + 1:], model.drop[stage + 1:], strict=True):
        h = d(s(h))
    return model.neck(h)


def fit_probe(feats: torch.Tensor, y: torch.Tensor, num_classes: int, *, steps: int = 100,
              l2: float = 1e-4) -> nn.Linear:
    """A linear classifier on fixed features (full-batch L-BFGS from zero; deterministic)."""
    probe = nn.Linear(feats.shape[1], num_classes).to(feats.device)
    nn.init.zeros_(probe.weight)
    nn.init.zeros_(probe.bias)
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(probe(feats), y) + l2 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return probe.requires_grad_(False)


def channel_attention(teacher: TGModel, x: torch.Tensor, y: torch.Tensor, *, num_classes: int,
                      temperature: float = 1.0, probe_steps: int = 100,
                      batch_size: int = 256) -> list[torch.Tensor]:
    """DELTA channel weights per stage: softmax of the probe loss increase when a channel is zeroed."""
    was_training = teacher.training
    teacher.eval()
    try:
        with torch.no_grad():
            chunks = [teacher.forward_stages(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
            stages = [torch.cat([c[0][j] for c in chunks]) for j in range(len(teacher.stages))]
            feats = torch.cat([c[1] for c in chunks])
        probe = fit_probe(feats, y, num_classes, steps=probe_steps)
        with torch.no_grad():
            base = F.cross_entropy(probe(feats), y)
            weights = []
            for j, h in enumerate(stages):
                increase = torch.empty(h.shape[1], device=h.device)
                for c in range(h.shape[1]):
                    losses = []
                    for i in range(0, len(h), batch_size):
                        hm = h[i:i + batch_size].clone()
                        hm[:, c] = 0
                        logits = probe(_forward_from(teacher, j, hm))
                        losses.append(F.cross_entropy(logits, y[i:i + batch_size], reduction="sum"))
                    increase[c] = torch.stack(losses).sum() / len(h) - base
                weights.append(torch.softmax(increase / temperature, dim=0))
    finally:
        teacher.train(was_training)
    return weights

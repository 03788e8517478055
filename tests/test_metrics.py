"""Metrics against hand-computed values, closed forms and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from transferguard.errors import ConfigError
from transferguard.evaluation import (
    accuracy,
    adversarial_accuracy,
    attack_metrics,
    attack_success_rate,
    feature_distance,
    feature_distillation_loss,
    histogram,
    input_gradient_norms,
    transferability_gamma,
    weight_distance,
)
from transferguard.models import DTN, TGModel

torch.set_num_threads(1)


class LinearTG(TGModel):
    """stage = A·flatten(x) + a; features = stage (optionally dropped out); logits = W·f + b."""

    arch = "linear-test"

    def __init__(self, in_dim: int = 12, dim: int = 4, classes: int = 3, p_drop: float = 0.0):
        super().__init__()
        self.normalize = nn.Identity()
        self.stem = nn.Flatten()
        self.stages = nn.ModuleList([nn.Linear(in_dim, dim)])
        self.neck = nn.Dropout(p_drop) if p_drop else nn.Identity()
        self.head = nn.Linear(dim, classes)
        self._finish(["fc"])


def _t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


# --------------------------------------------------------------------------- prediction metrics
def test_accuracy_hand_computed():
    assert accuracy(_t([0, 1, 2, 3]), _t([0, 1, 0, 0])) == 0.5
    assert math.isnan(accuracy(_t([]), _t([])))
    with pytest.raises(ConfigError):
        accuracy(_t([0, 1]), _t([0]))


def test_adversarial_accuracy_and_asr_hand_computed():
    y = _t([0, 1, 2, 0, 0])
    clean = _t([0, 1, 2, 3, 4])     # correct: 0, 1, 2
    adv = _t([0, 9, 2, 0, 7])       # correct: 0, 2, 3 (3 was wrong clean: never counted)
    assert adversarial_accuracy(clean, adv, y) == pytest.approx(2 / 5)
    assert adversarial_accuracy(clean, adv, y, convention="conditional") == pytest.approx(2 / 3)
    assert attack_success_rate(clean, adv, y) == pytest.approx(1 / 3)
    assert adversarial_accuracy(clean, adv, y, "conditional") + attack_success_rate(
        clean, adv, y) == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        adversarial_accuracy(clean, adv, y, convention="other")
    assert attack_metrics(clean, adv, y) == pytest.approx(
        {"adv_acc": 2 / 5, "adv_acc_cond": 2 / 3, "asr": 1 / 3})


def test_asr_and_conditional_are_nan_without_correct_clean_samples():
    y = _t([0, 1, 2])
    clean = _t([1, 2, 0])
    adv = _t([0, 1, 2])
    assert math.isnan(attack_success_rate(clean, adv, y))
    assert math.isnan(adversarial_accuracy(clean, adv, y, convention="conditional"))
    assert adversarial_accuracy(clean, adv, y) == 0.0


def test_transferability_gamma_and_zero_guard():
    assert transferability_gamma(0.6, 0.4) == pytest.approx(0.5)
    assert transferability_gamma(0.3, 0.3) == 0.0
    assert transferability_gamma(0.2, 0.4) == pytest.approx(-0.5)
    assert math.isnan(transferability_gamma(0.5, 0.0))
    assert math.isnan(transferability_gamma(0.0, 0.0))
    arr = transferability_gamma(np.array([0.6, 0.5]), np.array([0.4, 0.0]))
    assert arr[0] == pytest.approx(0.5) and math.isnan(arr[1])


def test_histogram_counts_and_cumulative():
    counts, edges = histogram(torch.tensor([0.1, 0.2, 0.6, 0.9]), bins=2, range=(0.0, 1.0))
    assert counts.tolist() == [2, 2] and edges.tolist() == [0.0, 0.5, 1.0]
    cum, _ = histogram(np.array([0.1, 0.2, 0.6, 0.9]), bins=4, range=(0.0, 1.0), cumulative=True)
    assert cum.tolist() == [0.5, 0.5, 0.75, 1.0]


# --------------------------------------------------------------------------- model distances
def _set(model: LinearTG, a: float, w: float) -> LinearTG:
    with torch.no_grad():
        model.stages[0].weight.fill_(a)
        model.stages[0].bias.zero_()
        model.head.weight.fill_(w)
        model.head.bias.zero_()
    return model


def test_weight_distance_hand_computed():
    a = _set(LinearTG(in_dim=3, dim=2, classes=2), 1.0, 0.0)
    b = _set(LinearTG(in_dim=3, dim=2, classes=2), 0.5, 1.0)
    # backbone: 6 weights differing by 0.5, biases equal → sqrt(6 · 0.25)
    assert weight_distance(a, b) == pytest.approx(math.sqrt(1.5))
    # with the head: + 4 weights differing by 1
    assert weight_distance(a, b, exclude_head=False) == pytest.approx(math.sqrt(1.5 + 4.0))
    # a head of another shape is skipped even when included
    c = _set(LinearTG(in_dim=3, dim=2, classes=5), 0.5, 1.0)
    assert weight_distance(a, c, exclude_head=False) == pytest.approx(math.sqrt(1.5))
    assert weight_distance(a, a) == 0.0
    with pytest.raises(ConfigError):
        weight_distance(nn.Linear(2, 2), nn.Linear(3, 3))


def test_feature_distance_closed_form_and_reductions():
    torch.manual_seed(0)
    a, b = LinearTG(), LinearTG()
    x = torch.rand(10, 3, 2, 2)
    xf = x.flatten(1).double().numpy()
    fa = xf @ a.stages[0].weight.detach().double().numpy().T + a.stages[0].bias.detach().double().numpy()
    fb = xf @ b.stages[0].weight.detach().double().numpy().T + b.stages[0].bias.detach().double().numpy()
    expected = np.linalg.norm(fa - fb, axis=1)
    per = feature_distance(a, b, x, reduction="none", batch_size=3)
    assert np.allclose(per.numpy(), expected, atol=1e-5)
    assert feature_distance(a, b, x) == pytest.approx(expected.mean(), abs=1e-5)
    assert feature_distance(a, b, x, reduction="sum") == pytest.approx(expected.sum(), abs=1e-4)
    assert feature_distance(a, a, x) == 0.0
    with pytest.raises(ConfigError):
        feature_distance(a, b, x, reduction="max")


def test_feature_distillation_loss_hand_computed_and_eval_mode():
    torch.manual_seed(1)
    s, t = LinearTG(p_drop=0.5), LinearTG()
    x = torch.rand(9, 3, 2, 2)
    xf = x.flatten(1).double().numpy()
    hs = xf @ s.stages[0].weight.detach().double().numpy().T + s.stages[0].bias.detach().double().numpy()
    ht = xf @ t.stages[0].weight.detach().double().numpy().T + t.stages[0].bias.detach().double().numpy()
    expected = float(((hs - ht) ** 2).mean())
    s.train()
    got = feature_distillation_loss(s, t, x, batch_size=4)     # uneven batches: 4, 4, 1
    assert got == pytest.approx(expected, rel=1e-6)
    assert feature_distillation_loss(s, t, x) == pytest.approx(got, rel=1e-6)
    assert s.training and s.neck.training                      # mode restored
    assert feature_distillation_loss(t, t, x) == 0.0


def test_feature_distillation_loss_sums_stages_on_dtn():
    torch.manual_seed(2)
    s, t = DTN(), DTN()
    x = torch.rand(6, 3, 32, 32)
    s.eval()
    t.eval()
    with torch.no_grad():
        outs_s, _ = s.forward_stages(x)
        outs_t, _ = t.forward_stages(x)
    expected = sum(float(((a - b) ** 2).mean()) for a, b in zip(outs_s, outs_t, strict=True))
    assert feature_distillation_loss(s, t, x, batch_size=4) == pytest.approx(expected, rel=1e-4)


# --------------------------------------------------------------------------- gradient norms
def test_input_gradient_norms_closed_form_on_linear_model():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    x = torch.rand(7, 3, 2, 2)
    y = torch.randint(0, 4, (7,))
    w = model[1].weight.detach().double().numpy()
    z = x.flatten(1).double().numpy() @ w.T + model[1].bias.detach().double().numpy()
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(7), y.numpy()] -= 1.0
    grad = p @ w                                                # ∇x CE = Wᵀ(softmax − onehot)
    model.train()
    for order, np_ord in [(2, 2), (1, 1), (float("inf"), np.inf)]:
        got = input_gradient_norms(model, x, y, p=order, batch_size=3)
        assert np.allclose(got.numpy(), np.linalg.norm(grad, ord=np_ord, axis=1), rtol=1e-4)
    assert model.training
    assert all(q.grad is None for q in model.parameters())


def test_input_gradient_norms_match_finite_differences_on_a_nonlinear_net():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Dropout(0.5),
                          nn.Linear(8, 3)).double()
    x = torch.rand(3, 3, 2, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    norms = input_gradient_norms(model, x, y)
    model.eval()
    h = 1e-6
    basis = torch.eye(12, dtype=torch.float64).view(12, 3, 2, 2) * h
    with torch.no_grad():
        for i in range(len(x)):
            lp = nn.functional.cross_entropy(model(x[i] + basis), y[i].repeat(12), reduction="none")
            lm = nn.functional.cross_entropy(model(x[i] - basis), y[i].repeat(12), reduction="none")
            grad = (lp - lm) / (2 * h)
            assert float(norms[i]) == pytest.approx(float(grad.norm()), rel=1e-5)

"""Attacks: closed forms on linear models, budgets, determinism, and behaviour on a trained CNN.

The trained model is a small CNN (a real TGModel) fitted for four epochs on scikit-learn's real
handwritten digits, upscaled to 32×32 and repeated to three channels.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from transferguard.attacks import (
    ATTACKS,
    LinfThreat,
    craft_in_batches,
    feature_attack,
    fgsm,
    fgsm_sweep,
    pgd,
    predict,
    transfer_predictions,
    uniform_noise,
)
from transferguard.errors import ConfigError
from transferguard.evaluation import accuracy, attack_success_rate
from transferguard.models import DTN, SYMMETRIC, Normalize, TGModel

torch.set_num_threads(1)


# --------------------------------------------------------------------------- models and data
class LinearTG(TGModel):
    """features = A·flatten(x) + a (one 'stage'), logits = W·features + b; optional capping neck."""

    arch = "linear-test"

    def __init__(self, in_shape=(3, 4, 4), dim: int = 6, classes: int = 3,
                 neck: nn.Module | None = None) -> None:
        super().__init__()
        self.normalize = nn.Identity()
        self.stem = nn.Flatten()
        self.stages = nn.ModuleList([nn.Linear(math.prod(in_shape), dim)])
        self.neck = neck if neck is not None else nn.Identity()
        self.head = nn.Linear(dim, classes)
        self._finish(["fc"])


class LinearPreact(LinearTG):
    """A ReLU6-capped penultimate layer that also exposes its pre-activation features."""

    def __init__(self, **kw) -> None:
        super().__init__(neck=nn.ReLU6(), **kw)

    def forward_features_preact(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages[0](self.stem(self.normalize(x)))


class TinyCNN(TGModel):
    arch = "tiny-test"

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = Normalize(*SYMMETRIC)
        self.stem = nn.Identity()
        self.stages = nn.ModuleList([
            nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
            nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU()),
        ])
        self.neck = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, 64),
                                  nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(64, num_classes)
        self._finish(["s1", "s2"])


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=32, mode="bilinear", align_corners=False).clamp(0, 1)
    return x.repeat(1, 3, 1, 1).contiguous(), torch.tensor(data.target, dtype=torch.long)


@pytest.fixture(scope="module")
def trained():
    """(model, x_test, y_test) — TinyCNN trained 4 epochs on 1,400 real digits."""
    torch.manual_seed(0)
    x, y = _digits()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1400], perm[1400:1700]
    model = TinyCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(4):
        order = tr[torch.randperm(len(tr), generator=g)]
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    acc = accuracy(predict(model, x[te]), y[te])
    assert acc > 0.85, f"test model trained badly ({acc:.3f})"
    return model, x[te], y[te]


def _linear(classes: int, seed: int = 0, in_shape=(3, 4, 4)) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), classes))


def _images(n: int = 16, shape=(3, 4, 4), seed: int = 0) -> torch.Tensor:
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))


def _np_ce_grad(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Independent NumPy gradient of CE for logits = Wx + b: Wᵀ(softmax − onehot)."""
    w = model[1].weight.detach().double().numpy()
    b = model[1].bias.detach().double().numpy()
    xf = x.flatten(1).double().numpy()
    z = xf @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y.numpy()] -= 1.0
    return (p @ w).reshape(x.shape)


def _linf(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# --------------------------------------------------------------------------- closed forms
def test_fgsm_binary_linear_is_the_closed_form_worst_case():
    model = _linear(2)
    x = _images(32)
    y = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(1))
    eps = 0.1
    w = model[1].weight.detach()
    direction = (w[1 - y] - w[y]).sign().view_as(x)           # sign(W_y' − W_y)
    expected = (x + eps * direction).clamp(0, 1)
    x_adv = fgsm(model, x, y, eps)
    assert torch.allclose(x_adv, expected, atol=1e-7)
    # It is the L∞ ∩ box maximiser of the margin z_y' − z_y: no random feasible point beats it.
    margin = lambda v: (v.flatten(1) * (w[1 - y] - w[y])).sum(1)   # noqa: E731
    best = margin(x_adv)
    g = torch.Generator().manual_seed(2)
    for _ in range(20):
        other = LinfThreat(eps).random_start(x, g)
        assert bool((margin(other) <= best + 1e-6).all())


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_pgd_reaches_the_linear_optimum(loss):
    model = _linear(2, seed=3)
    x = _images(32, seed=4)
    y = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(5))
    eps = 0.08
    optimum = fgsm(model, x, y, eps)
    for random_start in (True, False):
        x_adv = pgd(model, x, y, eps, steps=10, random_start=random_start, loss=loss,
                    generator=torch.Generator().manual_seed(0))
        assert torch.allclose(x_adv, optimum, atol=1e-6)


def test_fgsm_multiclass_matches_numpy_gradient_sign():
    model = _linear(5, seed=6)
    x = _images(24, seed=7)
    y = torch.randint(0, 5, (24,), generator=torch.Generator().manual_seed(8))
    eps = 4 / 255
    sign = torch.from_numpy(np.sign(_np_ce_grad(model, x, y))).float()
    assert torch.equal(fgsm(model, x, y, eps), (x + eps * sign).clamp(0, 1))
    target = (y + 1) % 5
    sign_t = torch.from_numpy(np.sign(_np_ce_grad(model, x, target))).float()
    assert torch.equal(fgsm(model, x, target, eps, targeted=True), (x - eps * sign_t).clamp(0, 1))


def test_fgsm_matches_torch_func_on_trained_cnn(trained):
    model, x, y = trained
    x, y = x[:64], y[:64]
    eps = 2 / 255
    grad = torch.func.grad(lambda v: F.cross_entropy(model(v), y, reduction="sum"))(x)
    expected = (x + eps * grad.sign()).clamp(0, 1)
    x_adv = fgsm(model, x, y, eps)
    # Same maths through an independent autodiff path; only exact-zero ties may differ.
    assert float((x_adv != expected).float().mean()) < 1e-4


# --------------------------------------------------------------------------- budgets
ALL_ATTACK_OPTIONS = {
    "fgsm": {},
    "pgd": {"steps": 5, "restarts": 2},
    "feature": {"steps": 5, "neuron": "best", "candidates": 3},
    "noise": {},
}


@pytest.mark.parametrize("name", sorted(ALL_ATTACK_OPTIONS))
@pytest.mark.parametrize("eps", [0.0, 3 / 255, 16 / 255])
def test_every_attack_respects_budget_and_box(trained, name, eps):
    model, x, y = trained
    x, y = x[:48], y[:48]
    options = dict(ALL_ATTACK_OPTIONS[name])
    if name != "fgsm":
        options["generator"] = torch.Generator().manual_seed(0)
    x_adv = ATTACKS[name](model, x, y, eps=eps, **options)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert _linf(x_adv, x) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    if eps == 0.0:
        assert torch.equal(x_adv, x)
        assert torch.equal(predict(model, x_adv), predict(model, x))
    else:
        assert _linf(x_adv, x) > eps / 2       # the budget is actually used


def test_registry_signatures_have_defaults():
    assert set(ATTACKS) == {"fgsm", "pgd", "feature", "noise"}
    for name, fn in ATTACKS.items():
        params = list(inspect.signature(fn).parameters.values())
        assert [p.name for p in params[:3]] == ["model", "x", "y"], name
        for p in params[2:]:
            assert p.default is not inspect.Parameter.empty or p.kind is p.VAR_KEYWORD, (name, p)


# --------------------------------------------------------------------------- sweep and strength
def test_fgsm_sweep_is_bit_identical_to_fgsm(trained):
    model, x, y = trained
    eps_list = [0.0, 1 / 255, 4 / 255, 16 / 255, 0.3]
    sweep = fgsm_sweep(model, x, y, eps_list)
    assert list(sweep) == eps_list
    for eps in eps_list:
        assert torch.equal(sweep[eps], fgsm(model, x, y, eps))


def test_success_rises_with_eps_and_pgd_beats_fgsm(trained):
    model, x, y = trained
    clean = predict(model, x)
    eps_list = [0.0, 2 / 255, 8 / 255, 24 / 255, 64 / 255]
    sweep = fgsm_sweep(model, x, y, eps_list)
    asr = [attack_success_rate(clean, predict(model, sweep[e]), y) for e in eps_list]
    assert asr[0] == 0.0
    assert all(b >= a for a, b in zip(asr, asr[1:], strict=False)), asr
    assert asr[-1] > asr[1] + 0.3, asr
    eps = 8 / 255
    asr_pgd = attack_success_rate(
        clean, predict(model, pgd(model, x, y, eps, generator=torch.Generator().manual_seed(0))),
        y)
    assert asr_pgd >= asr[2], (asr_pgd, asr[2])


def test_restarts_keep_per_sample_best_and_are_reproducible(trained):
    model, x, y = trained
    eps = 3 / 255

    def run(restarts: int, seed: int = 0) -> torch.Tensor:
        return pgd(model, x, y, eps, steps=3, restarts=restarts,
                   generator=torch.Generator().manual_seed(seed))

    one, three = run(1), run(3)
    assert torch.equal(one, run(1))                  # same seed, same result
    fooled_one = predict(model, one) != y
    fooled_three = predict(model, three) != y
    assert bool((fooled_three | ~fooled_one).all())  # restart 0 == the single run, kept if it won
    assert int(fooled_three.sum()) >= int(fooled_one.sum())


def test_targeted_pgd_reaches_targets(trained):
    model, x, y = trained
    x, y = x[:64], y[:64]
    target = (y + 1) % 10
    x_adv = pgd(model, x, target, 24 / 255, steps=10, targeted=True,
                generator=torch.Generator().manual_seed(0))
    hit = float((predict(model, x_adv) == target).float().mean())
    assert hit > 0.5, hit


# --------------------------------------------------------------------------- hygiene
def test_modes_restored_and_no_parameter_grads(trained):
    model, x, y = trained
    x, y = x[:16], y[:16]
    seen: list[bool] = []
    hook = model.neck.register_forward_hook(lambda mod, inp, out: seen.append(mod.training))
    try:
        model.train()
        model.stages[0].eval()            # a mixed state must survive as it was
        before = {name: mod.training for name, mod in model.named_modules()}
        req = [p.requires_grad for p in model.parameters()]
        fgsm(model, x, y, 0.03)
        fgsm_sweep(model, x, y, [0.01, 0.02])
        pgd(model, x, y, 0.03, steps=2, restarts=2)
        feature_attack(model, x, 0.03, steps=2, neuron="best", candidates=2)
        predict(model, x)
        assert seen and not any(seen)     # every forward ran in eval mode
        assert {name: mod.training for name, mod in model.named_modules()} == before
        assert all(p.grad is None for p in model.parameters())
        assert [p.requires_grad for p in model.parameters()] == req
    finally:
        hook.remove()
        model.eval()


def test_invalid_arguments_raise_config_error(trained):
    model, x, y = trained
    x, y = x[:4], y[:4]
    with pytest.raises(ConfigError):
        fgsm(model, x, y, -0.1)
    with pytest.raises(ConfigError):
        pgd(model, x, y, float("nan"))
    with pytest.raises(ConfigError):
        pgd(model, x, y, 0.1, loss="hinge")
    with pytest.raises(ConfigError):
        fgsm(model, x, y[:3], 0.1)
    with pytest.raises(ConfigError):
        feature_attack(_linear(3), x.flatten(1)[:, :48].view(4, 3, 4, 4), 0.1)
    with pytest.raises(ConfigError):
        feature_attack(model, x, 0.1, neuron=64)
    with pytest.raises(ConfigError):
        feature_attack(model, x, 0.1, neuron=[3, -1])
    with pytest.raises(ConfigError):
        feature_attack(model, x, 0.1, neuron="worst")
    with pytest.raises(ConfigError):
        feature_attack(model, x, 0.1, features="mid")
    with pytest.raises(ConfigError):
        uniform_noise(x.long(), 0.1)


# --------------------------------------------------------------------------- feature attack
def _feature_model(cls=LinearTG, seed: int = 0, dim: int = 6) -> LinearTG:
    torch.manual_seed(seed)
    model = cls(dim=dim)
    with torch.no_grad():   # weights bounded away from 0 so the closed form's sign is stable
        a = model.stages[0].weight
        a.copy_(a.sign() * (0.05 + 0.15 * torch.rand_like(a)))
    return model


def test_feature_attack_closed_form_on_linear_features():
    model = _feature_model()
    x = _images(20, seed=9)
    eps, k = 0.05, 2
    x_adv = feature_attack(model, x, eps, steps=40, step_size=0.01, neuron=k, random_start=False)
    a_k = model.stages[0].weight.detach()[k].view(1, 3, 4, 4)
    expected = (x + eps * a_k.sign()).clamp(0, 1)    # m·e_k dominates: maximise a_k·x'
    assert torch.allclose(x_adv, expected, atol=1e-6)
    same = feature_attack(model, x, eps, neuron=np.int64(k), random_start=False)  # NumPy index
    assert torch.equal(same, x_adv)
    with torch.no_grad():
        assert bool((model.forward_features(x_adv)[:, k] > model.forward_features(x)[:, k]).all())


def test_feature_attack_pushes_target_neuron_on_dtn():
    torch.manual_seed(0)
    model = DTN(num_classes=10).eval()
    x, _ = _digits()
    x = x[:8]
    eps, m = 8 / 255, 1000.0
    with torch.no_grad():
        f0 = model.forward_features(x)
    alive = (f0 > 0).all(dim=0)           # a neuron the ReLU passes on every image
    k = int(torch.where(alive, f0.mean(0), torch.full_like(f0[0], -1.0)).argmax())
    assert bool(alive[k])
    x_adv = feature_attack(model, x, eps, steps=10, step_size=2 / 255, neuron=k, m=m,
                           generator=torch.Generator().manual_seed(0))
    assert _linf(x_adv, x) <= eps + 1e-6 and 0 <= float(x_adv.min()) <= float(x_adv.max()) <= 1
    with torch.no_grad():
        f1 = model.forward_features(x_adv)
    target = torch.zeros_like(f0)
    target[:, k] = m
    assert bool((f1[:, k] > f0[:, k]).all())                           # toward m
    assert bool(((f1 - target).norm(dim=1) < (f0 - target).norm(dim=1)).all())


def test_feature_best_keeps_farthest_candidate_per_image(trained):
    model, x, _ = trained
    x = x[:32]
    eps, cands = 6 / 255, [0, 7, 21]
    kw = dict(steps=4, step_size=2 / 255, random_start=False)
    with torch.no_grad():
        clean = model.forward_features(x)

    def dist(v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (model.forward_features(v) - clean).norm(dim=1)

    singles = torch.stack([dist(feature_attack(model, x, eps, neuron=c, **kw)) for c in cands])
    best = feature_attack(model, x, eps, neuron=cands, batch_neurons=1, **kw)
    assert torch.allclose(dist(best), singles.max(dim=0).values, atol=1e-5)
    # candidates=K picks the K neurons with the largest mean clean activation
    top2 = clean.mean(0).argsort(descending=True)[:2].tolist()
    a = feature_attack(model, x, eps, neuron="best", candidates=2, batch_neurons=1, **kw)
    b = feature_attack(model, x, eps, neuron=top2, batch_neurons=1, **kw)
    assert torch.equal(a, b)


def test_feature_batched_neurons_match_sequential():
    model = _feature_model(seed=1)
    x = _images(10, seed=10)
    kw = dict(steps=10, step_size=0.01, neuron="best", candidates="all", random_start=False)
    one = feature_attack(model, x, 0.04, batch_neurons=1, **kw)
    many = feature_attack(model, x, 0.04, batch_neurons=4, **kw)
    assert torch.allclose(one, many, atol=1e-6)


def test_feature_select_with_fools_at_least_as_many(trained):
    model, x, y = trained
    x, y = x[:32], y[:32]
    cands = [1, 2, 3]
    kw = dict(steps=4, step_size=3 / 255, random_start=False, batch_neurons=1)
    fooled = torch.stack([(predict(model, feature_attack(model, x, 12 / 255, neuron=c, **kw)) != y)
                          for c in cands]).any(dim=0)
    chosen = feature_attack(model, x, 12 / 255, neuron=cands, select_with=[model], y=y, **kw)
    assert torch.equal(predict(model, chosen) != y, fooled)


def test_features_pre_uses_preactivation_when_present():
    model = _feature_model(LinearPreact, seed=2)
    with torch.no_grad():
        model.stages[0].bias.zero_()
        model.stages[0].bias[1] = 5.5   # near the ReLU6 cap, where post features saturate
    x = _images(12, seed=11)
    kw = dict(steps=20, step_size=0.01, neuron=1, random_start=False)
    pre = feature_attack(model, x, 0.1, features="pre", **kw)
    post = feature_attack(model, x, 0.1, features="post", **kw)
    with torch.no_grad():
        z_pre = model.forward_features_preact(pre)[:, 1]
        z_post = model.forward_features_preact(post)[:, 1]
    assert bool((z_pre >= z_post - 1e-6).all()) and float((z_pre - z_post).max()) > 0.1
    # a model without forward_features_preact falls back to the post-activation features
    plain = _feature_model(seed=2)
    assert torch.equal(feature_attack(plain, x, 0.1, features="pre", **kw),
                       feature_attack(plain, x, 0.1, features="post", **kw))


# --------------------------------------------------------------------------- noise, batching
def test_uniform_noise_bounds_and_reproducibility():
    x = torch.full((64, 3, 8, 8), 0.5)
    eps = 16 / 255
    a = uniform_noise(x, eps, generator=torch.Generator().manual_seed(0))
    b = uniform_noise(x, eps, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    d = a - x
    assert float(d.abs().max()) <= eps + 1e-6
    assert abs(float(d.mean())) < 0.02 * eps                  # centred
    assert abs(float(d.abs().mean()) - eps / 2) < 0.02 * eps  # |U(−ε, ε)| has mean ε/2
    edge = uniform_noise(torch.ones(4, 3, 4, 4), eps)
    assert float(edge.max()) <= 1.0
    assert torch.equal(uniform_noise(x, 0.0), x)


def test_predict_transfer_and_batched_crafting(trained):
    model, x, y = trained
    lin = _linear(10, in_shape=(3, 32, 32))
    with torch.no_grad():
        direct = model(x).argmax(1)
    assert torch.equal(predict(model, x, batch_size=7), direct)
    preds = transfer_predictions(x, {"cnn": model, "lin": lin}, batch_size=50)
    assert set(preds) == {"cnn", "lin"} and torch.equal(preds["cnn"], direct)
    assert preds["lin"].dtype == torch.long and len(preds["lin"]) == len(x)

    binary = _linear(2, seed=12)
    xb = _images(50, seed=13)
    yb = torch.randint(0, 2, (50,), generator=torch.Generator().manual_seed(14))
    batched = craft_in_batches(lambda a, b: fgsm(binary, a, b, 0.05), xb, yb, batch_size=16,
                               progress=False)
    assert torch.equal(batched, fgsm(binary, xb, yb, 0.05))
    noisy = craft_in_batches(lambda a: uniform_noise(a, 0.05), xb, None, batch_size=16,
                             progress=False)
    assert noisy.shape == xb.shape and _linf(noisy, xb) <= 0.05 + 1e-6

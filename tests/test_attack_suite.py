"""The transfer-attack suite: MI/DI/TI options, the layer, FIA, ILA and MI-DI-TI-FGSM attacks, and
the suite registry.

Each attack is checked against a closed form on linear models (run in float64, on images of the
1/16 grid in [1/4, 3/4] so that x ± ε stays inside [0, 1]) or against an independent computation
(NumPy / SciPy, or a verbatim copy of the loop before the options existed). The CNN used by the
contract tests is fixed-seed and **untrained**; only properties that hold for any weights are
asserted there.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import correlate2d
from torch import nn

from transferguard.attacks import (
    ATTACKS,
    SUITE,
    AttackEntry,
    LinfThreat,
    feature_attack,
    fia_attack,
    gaussian_kernel,
    ila_attack,
    input_diversity,
    layer_attack,
    mi_di_ti_fgsm,
    perturb,
    pgd,
    predict,
    smooth_gradient,
    transfer_suite,
)
from transferguard.attacks.engine import input_gradient
from transferguard.attacks.losses import feature_target_loss, logit_loss, prediction_success
from transferguard.errors import ConfigError
from transferguard.models import SYMMETRIC, Normalize, TGModel

SHAPE = (3, 4, 4)
PIXELS = math.prod(SHAPE)


# --------------------------------------------------------------------------- models and data
class LinearStages(TGModel):
    """Linear stages ``h ← W_i h + b_i`` on the flattened image, identity neck, linear head."""

    arch = "linear-stages-test"

    def __init__(self, weights: list[torch.Tensor], classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        self.normalize = nn.Identity()
        self.stem = nn.Flatten()
        layers = []
        g = torch.Generator().manual_seed(seed)
        for w in weights:
            layer = nn.Linear(w.shape[1], w.shape[0]).double()
            with torch.no_grad():
                layer.weight.copy_(w)
                layer.bias.copy_(torch.rand(w.shape[0], generator=g, dtype=torch.float64) - 0.5)
            layers.append(layer)
        self.stages = nn.ModuleList(layers)
        self.neck = nn.Identity()
        self.head = nn.Linear(weights[-1].shape[0], classes).double()
        with torch.no_grad():
            self.head.weight.copy_(_away_from_zero((classes, weights[-1].shape[0]), seed + 1))
        self._finish([f"s{i}" for i in range(len(weights))])


def _away_from_zero(shape, seed: int) -> torch.Tensor:
    """Random float64 entries with |a| ∈ [0.05, 0.2] (signs are never ambiguous)."""
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, shape, generator=g).double() * 2 - 1
    return sign * (0.05 + 0.15 * torch.rand(shape, generator=g, dtype=torch.float64))


def _grid(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(4, 13, (n, *SHAPE), generator=g).double() / 16)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class SmallCNN(TGModel):
    arch = "small-cnn-test"

    def __init__(self) -> None:
        super().__init__()
        self.normalize = Normalize(*SYMMETRIC)
        self.stem = nn.Identity()
        self.stages = nn.ModuleList([
            nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
        ])
        self.neck = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 12),
                                  nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(12, 5)
        self._finish(["s1", "s2"])


@pytest.fixture(scope="module")
def cnn():
    """(model, x, y): a fixed-seed untrained CNN, smooth random 16×16 images, own predictions."""
    torch.manual_seed(0)
    model = SmallCNN().eval()
    g = _gen(1)
    x = F.interpolate(torch.rand(12, 3, 4, 4, generator=g), size=16, mode="bilinear",
                      align_corners=False).clamp(0, 1)
    return model, x, predict(model, x)


# --------------------------------------------------------------------------- the loop before
def _old_perturb(loss_fn, x, threat, *, steps, step_size, random_start=True, restarts=1,
                 generator=None, success_fn=None):
    """Verbatim copy of ``perturb`` before the MI/DI/TI options (the reference for bit-identity)."""
    x = x.detach()
    best = None
    for _ in range(restarts):
        x_adv = threat.random_start(x, generator) if random_start else x.clone()
        for _ in range(steps):
            grad, _ = input_gradient(loss_fn, x_adv)
            x_adv = threat.project(threat.step(x_adv, grad, step_size), x)
        if restarts == 1:
            return x_adv.detach()
        with torch.no_grad():
            loss = loss_fn(x_adv).detach()
            success = (success_fn(x_adv).bool() if success_fn is not None
                       else torch.zeros_like(loss, dtype=torch.bool))
        if best is None:
            best = (x_adv.detach(), loss, success)
            continue
        bx, bl, bs = best
        better = (success & ~bs) | ((success == bs) & (loss > bl))
        mask = better.view(-1, *([1] * (x.ndim - 1)))
        best = (torch.where(mask, x_adv, bx), torch.where(better, loss, bl), bs | success)
    return best[0]


@pytest.mark.parametrize("restarts", [1, 2])
def test_options_off_are_bit_identical_to_the_old_loop(cnn, restarts):
    model, x, y = cnn
    eps, steps = 4 / 255, 3
    old = _old_perturb(logit_loss(model, y), x, LinfThreat(eps), steps=steps,
                       step_size=2.5 * eps / steps, restarts=restarts, generator=_gen(3),
                       success_fn=prediction_success(model, y))
    new = pgd(model, x, y, eps, steps=steps, restarts=restarts, generator=_gen(3))
    off = pgd(model, x, y, eps, steps=steps, restarts=restarts, generator=_gen(3),
              momentum=0.0, diversity=0.0, ti_kernel=0, diversity_scale=0.5)
    assert torch.equal(new, old) and torch.equal(off, old)
    neuron = torch.full((len(x),), 3, dtype=torch.long)
    old_f = _old_perturb(feature_target_loss(model.forward_features, neuron, 1000.0), x,
                         LinfThreat(eps), steps=steps, step_size=0.01, restarts=restarts,
                         generator=_gen(4))
    new_f = feature_attack(model, x, eps, steps=steps, neuron=3, restarts=restarts,
                           generator=_gen(4))
    assert torch.equal(new_f, old_f)


def test_options_off_draw_no_random_numbers(cnn):
    model, x, y = cnn
    g = _gen(5)
    pgd(model, x, y, 2 / 255, steps=2, random_start=False, generator=g, diversity=0.0)
    assert torch.equal(g.get_state(), _gen(5).get_state())


# --------------------------------------------------------------------------- TI
def test_gaussian_kernel_is_normalised_symmetric_and_gaussian():
    assert torch.equal(gaussian_kernel(1), torch.ones(1, 1))
    for size in (3, 5, 7, 15):
        k = gaussian_kernel(size, dtype=torch.float64)
        assert k.shape == (size, size)
        assert abs(float(k.sum()) - 1.0) < 1e-12
        assert torch.equal(k, k.T) and torch.equal(k, k.flip(0)) and torch.equal(k, k.flip(1))
        assert int(k.argmax()) == (size * size) // 2           # peak at the centre
        sigma = (size - 1) / 6                                   # ±3σ across the grid
        t = np.arange(size) - (size - 1) / 2
        ref = np.exp(-np.add.outer(t * t, t * t) / (2 * sigma ** 2))
        assert np.allclose(k.numpy(), ref / ref.sum(), rtol=1e-12, atol=0)
    for bad in (0, 2, -3, 1.5):
        with pytest.raises(ConfigError):
            gaussian_kernel(bad)


def test_ti_smoothing_matches_scipy_correlation():
    g = _gen(6)
    grad = torch.randn(2, 3, 9, 9, generator=g, dtype=torch.float64)
    k = gaussian_kernel(5, dtype=torch.float64).numpy()
    out = smooth_gradient(grad, 5).numpy()
    for b in range(2):
        for c in range(3):
            ref = correlate2d(grad[b, c].numpy(), k, mode="same", boundary="fill")
            assert np.allclose(out[b, c], ref, rtol=0, atol=1e-12)


def test_ti_kernel_one_equals_no_ti(cnn):
    model, x, y = cnn
    kw = dict(steps=3, generator=None, random_start=False)
    assert torch.equal(pgd(model, x, y, 4 / 255, ti_kernel=1, **kw), pgd(model, x, y, 4 / 255, **kw))


def test_mdti_with_ti_on_binary_linear_model_is_the_smoothed_vertex():
    """Binary linear classifier: ∇x CE = (p_other − 1)(w_y − w_other)·… has the sign pattern of
    d = w_other − w_y at every pixel, so one TI step lands on x + ε·sign(K ⋆ d) per channel."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)).double()
    x = 0.25 + 0.5 * torch.rand(6, 3, 8, 8, generator=_gen(7), dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    eps = 0.05
    x_adv = mi_di_ti_fgsm(model, x, y, eps, steps=1, momentum=0.0, diversity=0.0, ti_kernel=3)
    w = model[1].weight.detach().view(2, 3, 8, 8).numpy()
    k = gaussian_kernel(3, dtype=torch.float64).numpy()
    for i in range(len(x)):
        d = w[1 - int(y[i])] - w[int(y[i])]
        smooth = np.stack([correlate2d(d[c], k, mode="same", boundary="fill") for c in range(3)])
        assert np.abs(smooth).min() > 1e-9
        expected = x[i].numpy() + eps * np.sign(smooth)
        assert np.allclose(x_adv[i].numpy(), expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- DI
def test_di_probability_zero_or_scale_one_is_no_di(cnn):
    model, x, y = cnn
    kw = dict(steps=3, random_start=False)
    plain = pgd(model, x, y, 4 / 255, **kw)
    assert torch.equal(pgd(model, x, y, 4 / 255, diversity=0.0, generator=_gen(0), **kw), plain)
    # scale 1: the resize is to the same size (an exact copy) and the padding is empty
    assert torch.equal(pgd(model, x, y, 4 / 255, diversity=1.0, diversity_scale=1.0,
                           generator=_gen(0), **kw), plain)
    assert torch.equal(input_diversity(x, 0.0, 0.5, _gen(0)), x)


def test_di_resizes_and_pads_a_constant_image():
    x = torch.full((2, 3, 20, 20), 0.5)
    seen = set()
    for seed in range(12):
        out = input_diversity(x, 1.0, 0.7, _gen(seed))
        assert out.shape == x.shape
        assert torch.equal(out, input_diversity(x, 1.0, 0.7, _gen(seed)))    # seeded
        inside = out == 0.5
        assert bool((inside | (out == 0)).all())
        rows = inside[0, 0].any(1).nonzero().flatten()
        cols = inside[0, 0].any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert h == w and math.ceil(0.7 * 20) <= h <= 20                     # square block
        assert torch.equal(rows, torch.arange(rows[0], rows[0] + h))          # contiguous
        assert int(inside[0, 0].sum()) == h * w
        assert torch.equal(inside, inside[:1, :1].expand_as(inside))         # one draw per batch
        seen.add((h, int(rows[0]), int(cols[0])))
    assert len(seen) > 3


def test_di_is_seeded(cnn):
    model, x, y = cnn
    kw = dict(steps=3, diversity=0.7, diversity_scale=0.6)
    a = pgd(model, x, y, 4 / 255, generator=_gen(8), **kw)
    assert torch.equal(a, pgd(model, x, y, 4 / 255, generator=_gen(8), **kw))


# --------------------------------------------------------------------------- MI
def test_momentum_on_a_linear_loss_keeps_the_sign_path():
    """∇ of ⟨w, x⟩ is constant, so every velocity is a positive multiple of w: any μ gives the
    same path as plain sign steps (ending at x + ε·sign(w))."""
    x = _grid(8, seed=9)
    w = _away_from_zero(SHAPE, 10)
    loss = lambda v: (v * w).flatten(1).sum(1)    # noqa: E731
    threat = LinfThreat(1 / 16)
    for mu in (0.5, 1.0, 3.0):
        for steps in (1, 2, 5):
            a = perturb(loss, x, threat, steps=steps, step_size=1 / 64, random_start=False,
                        momentum=mu).x_adv
            b = perturb(loss, x, threat, steps=steps, step_size=1 / 64, random_start=False).x_adv
            assert torch.equal(a, b)
            assert torch.equal(a, x + min(steps, 4) / 64 * w.sign())


def test_momentum_matches_numpy_mi_fgsm_on_a_quadratic():
    """Loss −½‖x − c‖² (∇ = c − x): the torch loop equals an independent NumPy MI-FGSM."""
    x = _grid(6, seed=11)
    c = torch.rand(x.shape, generator=_gen(12), dtype=torch.float64)
    eps, alpha, mu, steps = 0.1, 0.03, 0.7, 8
    loss = lambda v: -0.5 * (v - c).pow(2).flatten(1).sum(1)    # noqa: E731
    got = perturb(loss, x, LinfThreat(eps), steps=steps, step_size=alpha, random_start=False,
                  momentum=mu).x_adv.numpy()
    xn, cn = x.numpy(), c.numpy()
    adv, vel = xn.copy(), None
    for _ in range(steps):
        grad = cn - adv
        normed = grad / np.abs(grad).reshape(len(grad), -1).mean(1).reshape(-1, 1, 1, 1)
        vel = normed if vel is None else mu * vel + normed
        adv = np.clip(np.clip(adv + alpha * np.sign(vel), xn - eps, xn + eps), 0, 1)
    assert np.allclose(got, adv, rtol=0, atol=1e-12)
    plain = perturb(loss, x, LinfThreat(eps), steps=steps, step_size=alpha,
                    random_start=False).x_adv.numpy()
    assert not np.allclose(got, plain)       # momentum really changes this path


def test_invalid_trick_options_raise(cnn):
    model, x, y = cnn
    for bad in (dict(momentum=-1.0), dict(diversity=1.5), dict(diversity_scale=0.0),
                dict(ti_kernel=4), dict(ti_kernel=-1), dict(momentum=float("nan"))):
        with pytest.raises(ConfigError):
            pgd(model, x[:2], y[:2], 0.01, steps=1, **bad)
    with pytest.raises(ConfigError):          # DI/TI need (B, C, H, W)
        perturb(lambda v: v.sum(1), torch.rand(3, 5), LinfThreat(0.1), steps=1, step_size=0.1,
                ti_kernel=3)


# --------------------------------------------------------------------------- layer
def _rank_one(seed: int, dim: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    u = _away_from_zero((dim,), seed)
    v = _away_from_zero((PIXELS,), seed + 100)
    return u, v


def test_layer_attack_closed_form_on_rank_one_and_identity_stages():
    """Stage 0 = identity (every vertex of the ball maximises ‖δ‖₂); stage 1 = u·vᵀ (‖A_1δ‖ =
    ‖u‖·|v·δ|, maximised at x ± ε·sign(v), the side given by the random start's v·δ₀)."""
    u, v = _rank_one(13)
    model = LinearStages([torch.eye(PIXELS, dtype=torch.float64), torch.outer(u, v)])
    x = _grid(10, seed=14)
    eps = 1 / 16
    for stage in (-1, 1):
        x_adv = layer_attack(model, x, eps, stage=stage, steps=10, generator=_gen(15))
        delta0 = LinfThreat(eps).random_start(x, _gen(15)) - x
        side = (delta0.flatten(1) @ v).sign().view(-1, 1, 1, 1)
        assert torch.allclose(x_adv, x + eps * side * v.view(SHAPE).sign(), rtol=0, atol=1e-12)
        gain = (x_adv - x).flatten(1) @ v
        assert torch.allclose(gain.abs(), torch.full_like(gain, eps * float(v.abs().sum())))
    x0 = layer_attack(model, x, eps, stage=0, steps=10, generator=_gen(15))
    assert torch.allclose((x0 - x).abs(), torch.full_like(x, eps), rtol=0, atol=1e-12)


def test_layer_stage_is_validated():
    model = LinearStages([_away_from_zero((4, PIXELS), 16)])
    x = _grid(2, seed=17)
    for bad in (1, -2, 0.5, True, "last"):
        with pytest.raises(ConfigError):
            layer_attack(model, x, 0.01, stage=bad)
    with pytest.raises(ConfigError):          # no stages: not a TGModel
        layer_attack(nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, 2)), x.float(), 0.01)
    for attack in (fia_attack, ila_attack):
        with pytest.raises(ConfigError):
            attack(model, x, 0.01, stage=3)


# --------------------------------------------------------------------------- FIA
def test_fia_linear_closed_form_any_mask():
    """f = A·x + a and z = W·f + b: the importance ∂z_y/∂f = W_y for every mask, so FIA
    minimises ⟨W_y, A·x'⟩ and ends at x − ε·sign(Aᵀ W_y), whatever p and N."""
    a = _away_from_zero((6, PIXELS), 18)
    model = LinearStages([a])
    x = _grid(9, seed=19)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    eps = 1 / 16
    direction = (model.head.weight.detach()[y] @ a).view(-1, *SHAPE)
    assert float(direction.abs().min()) > 1e-6
    expected = x - eps * direction.sign()
    for drop, ensemble in ((0.0, 1), (0.5, 3)):
        x_adv = fia_attack(model, x, eps, y, drop=drop, ensemble=ensemble, steps=5,
                           generator=_gen(20))
        assert torch.allclose(x_adv, expected, rtol=0, atol=1e-12)
    # without labels the source's own clean prediction is the label
    own = predict(model, x)
    assert torch.equal(fia_attack(model, x, eps, drop=0.0, ensemble=1, steps=5),
                       fia_attack(model, x, eps, own, drop=0.0, ensemble=1, steps=5))
    for bad in (dict(ensemble=0), dict(drop=1.0), dict(drop=-0.1)):
        with pytest.raises(ConfigError):
            fia_attack(model, x, eps, y, **bad)


def test_fia_importance_is_the_masked_gradient_average():
    """Split after a linear stage 0, then a ReLU stage 1: ∂z_y/∂h = A_1ᵀ·diag(1[A_1h + b_1 > 0])·W_y
    depends on each masked copy. It is recomputed here in closed form from the masks the
    generator yields, and compared with FIA's importance."""
    from transferguard.attacks.fia import aggregate_gradient
    from transferguard.attacks.losses import stage_split

    a0 = _away_from_zero((7, PIXELS), 21)
    a1 = _away_from_zero((5, 7), 22)
    model = LinearStages([a0, a1])
    model.stages[1] = nn.Sequential(model.stages[1], nn.ReLU())
    b0 = model.stages[0].bias.detach()
    b1 = model.stages[1][0].bias.detach()
    w = model.head.weight.detach()
    x = _grid(4, seed=23)
    y = torch.tensor([2, 0, 1, 1])
    prefix, suffix = stage_split(model, 0)
    got = aggregate_gradient(prefix, suffix, x, y, ensemble=3, drop=0.4, generator=_gen(24))
    g = _gen(24)
    total = torch.zeros(4, 7, dtype=torch.float64)
    active_patterns = set()
    for _ in range(3):
        keep = (torch.rand(x.shape, generator=g, dtype=torch.float64) >= 0.4).double()
        h = (x * keep).flatten(1) @ a0.T + b0
        active = ((h @ a1.T + b1) > 0).double()                  # (B, 5)
        active_patterns.add(tuple(active.flatten().tolist()))
        total += (w[y] * active) @ a1
    expected = total / total.norm(dim=1, keepdim=True)
    assert len(active_patterns) > 1                              # the masks matter here
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- ILA
def test_ila_linear_closed_form_from_a_given_reference():
    """f = A·x + a: ⟨A(x' − x), Δ⟩ with Δ = A(x_ref − x) is maximised at x + ε·sign(AᵀΔ)."""
    a = _away_from_zero((6, PIXELS), 25)
    model = LinearStages([a])
    x = _grid(8, seed=26)
    eps = 1 / 16
    x_ref = LinfThreat(eps).random_start(x, _gen(27))
    delta = (x_ref - x).flatten(1) @ a.T
    direction = (delta @ a).view_as(x)
    assert float(direction.abs().min()) > 1e-9
    x_adv = ila_attack(model, x, eps, reference=x_ref, steps=5)
    assert torch.allclose(x_adv, x + eps * direction.sign(), rtol=0, atol=1e-12)


def test_ila_with_layer_reference_on_rank_one_feature():
    """f = u·vᵀx + a: any reference direction is ±u, so ILA lands on the layer attack's vertex."""
    u, v = _rank_one(28)
    model = LinearStages([torch.outer(u, v)])
    x = _grid(6, seed=29)
    eps = 1 / 16
    ref = layer_attack(model, x, eps, steps=5, generator=_gen(30))
    side = ((ref - x).flatten(1) @ v).sign().view(-1, 1, 1, 1)
    x_adv = ila_attack(model, x, eps, reference="layer", reference_steps=5, steps=5,
                       generator=_gen(30))
    assert torch.allclose(x_adv, x + eps * side * v.view(SHAPE).sign(), rtol=0, atol=1e-12)
    with pytest.raises(ConfigError):
        ila_attack(model, x, eps, reference="fgsm")
    with pytest.raises(ConfigError):
        ila_attack(model, x, eps, reference=x[:2])


# --------------------------------------------------------------------------- MI-DI-TI-FGSM
def test_mdti_binary_linear_reaches_the_vertex_and_needs_labels():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, 2)).double()
    x = _grid(10, seed=31)
    y = torch.randint(0, 2, (10,), generator=_gen(32))
    eps = 1 / 16
    w = model[1].weight.detach()
    expected = x + eps * (w[1 - y] - w[y]).sign().view_as(x)
    x_adv = mi_di_ti_fgsm(model, x, y, eps, steps=10, diversity=0.0, ti_kernel=0)   # MI only
    assert torch.allclose(x_adv, expected, rtol=0, atol=1e-12)
    with pytest.raises(ConfigError):
        mi_di_ti_fgsm(model, x, None, eps)


# --------------------------------------------------------------------------- registry
def test_suite_registry_metadata_and_selection():
    assert set(ATTACKS) == {"fgsm", "pgd", "feature", "noise"}
    assert set(ATTACKS) <= set(SUITE)
    assert {"mi-di-ti-fgsm", "layer", "fia", "ila"} <= set(SUITE)
    for name, entry in SUITE.items():
        assert isinstance(entry, AttackEntry) and entry.name == name and entry.summary
        assert entry.label_free == (not entry.needs_labels)
        params = list(inspect.signature(entry.fn).parameters.values())
        assert [p.name for p in params[:3]] == ["model", "x", "y"], name
        for p in params[2:]:
            assert p.default is not inspect.Parameter.empty or p.kind is p.VAR_KEYWORD, (name, p)
    with pytest.raises(AttributeError):
        SUITE["fgsm"].needs_labels = False
    needs = {n for n, e in SUITE.items() if e.needs_labels}
    assert needs == {"fgsm", "pgd", "mi-di-ti-fgsm"}
    assert {n for n, e in SUITE.items() if e.feature_level} == {"feature", "layer", "fia", "ila"}
    assert [e.name for e in transfer_suite(True)] == list(SUITE)
    assert [e.name for e in transfer_suite(False)] == [n for n in SUITE if n not in needs]


def test_suite_feature_tries_all_neurons(cnn):
    model, x, _ = cnn
    kw = dict(steps=2, random_start=False)
    got = SUITE["feature"](model, x, eps=4 / 255, **kw)
    assert torch.equal(got, feature_attack(model, x, 4 / 255, neuron="best", candidates="all",
                                           batch_neurons=16, **kw))
    assert torch.equal(SUITE["feature"](model, x, eps=4 / 255, neuron=2, **kw),
                       ATTACKS["feature"](model, x, eps=4 / 255, neuron=2, **kw))


FAST = {"noise": {}, "fgsm": {}, "pgd": {"steps": 2, "restarts": 2}, "mi-di-ti-fgsm": {"steps": 2},
        "feature": {"steps": 2}, "layer": {"steps": 2, "restarts": 2},
        "fia": {"steps": 2, "ensemble": 2}, "ila": {"steps": 2, "reference_steps": 2}}
TRICKS = {"momentum": 1.0, "diversity": 0.5, "diversity_scale": 0.8, "ti_kernel": 3}


@pytest.mark.parametrize("tricks", [False, True])
@pytest.mark.parametrize("name", list(SUITE))
def test_every_suite_entry_honours_the_contract(cnn, name, tricks):
    """Budget ∩ box, eps = 0 is the identity, eval mode during the attack with every module's
    mode restored after, no parameter gradient, seeded determinism — for every entry."""
    assert set(FAST) == set(SUITE)
    model, x, y = cnn
    entry = SUITE[name]
    options = dict(FAST[name])
    if tricks:
        if not entry.iterative:
            pytest.skip("not iterative")
        options.update(TRICKS)
    if name != "fgsm":
        options["generator"] = None
    seen: list[bool] = []
    hook = model.stages[-1].register_forward_hook(lambda mod, inp, out: seen.append(mod.training))
    try:
        model.train()
        model.stages[0].eval()
        before = {n: m.training for n, m in model.named_modules()}
        runs = []
        for eps in (0.0, 6 / 255, 6 / 255):
            if "generator" in options:
                options["generator"] = _gen(33)
            runs.append(entry(model, x, y, eps=eps, **options))
            assert {n: m.training for n, m in model.named_modules()} == before
        assert all(p.grad is None for p in model.parameters())
        assert all(p.requires_grad for p in model.parameters())
        if name != "noise":
            assert seen and not any(seen)
    finally:
        hook.remove()
        model.eval()
    zero, a, b = runs
    assert torch.equal(zero, x)
    assert torch.equal(a, b)                                   # seeded: reproducible
    assert a.shape == x.shape and a.dtype == x.dtype
    assert _linf(a, x) <= 6 / 255 + 1e-6 and _linf(a, x) > 1 / 255
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def _linf(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())

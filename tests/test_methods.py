"""Transfer methods: initialisation, freezing and regularisers against hand-computed values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from transferguard.data.base import Split
from transferguard.errors import ConfigError
from transferguard.methods import (
    METHODS,
    CommonInit,
    FineTune,
    LinearProbe,
    Scratch,
    create_method,
    list_methods,
)
from transferguard.methods.delta_attention import _forward_from, fit_probe
from transferguard.models import DTN
from transferguard.training import TrainConfig, fit


def digits_split(start: int, n: int) -> Split:
    """Real handwritten digits (sklearn), 8×8 upscaled to 32×32 and repeated to 3 channels."""
    d = load_digits()
    x = torch.tensor(d.images[start:start + n], dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=32, mode="bilinear", align_corners=False).clamp(0, 1)
    x = (x * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    return Split(x, torch.tensor(d.target[start:start + n]))


def dtn(num_classes: int = 10, seed: int = 0) -> DTN:
    torch.manual_seed(seed)
    return DTN(num_classes)


def trained_source(seed: int = 1) -> DTN:
    """A DTN with non-default BN statistics (a few forward passes in train mode)."""
    m = dtn(10, seed)
    m.train()
    with torch.no_grad():
        for x, _ in digits_split(0, 64).batches(32):
            m(x)
    return m.eval()


# --------------------------------------------------------------------------- registry
def test_registry_names_and_aliases():
    assert set(list_methods()) == {"scratch", "ft", "linear", "l2sp", "delta", "delta-attention",
                                   "delta-r", "renofeation", "commoninit"}
    assert list(METHODS) == list_methods()
    assert isinstance(create_method("retrain"), Scratch)
    assert isinstance(create_method("finetune"), FineTune)
    assert isinstance(create_method("commoninit"), CommonInit)


def test_unknown_method_and_bad_options_raise_config_error():
    with pytest.raises(ConfigError, match="unknown method 'nope'.*scratch.*renofeation"):
        create_method("nope")
    with pytest.raises(ConfigError, match="invalid options"):
        create_method("ft", alpha=0.1)
    with pytest.raises(ConfigError, match="lambda_feat"):
        create_method("scratch", lambda_feat=1.0)
    with pytest.raises(ConfigError, match="dropout"):
        create_method("delta", dropout=1.5)


def test_figure3_ablations_are_expressible():
    for name in ("delta", "delta-r", "scratch"):
        for dropout in (0.0, 0.1):
            for swa in (False, True):
                m = create_method(name, dropout=dropout, swa=swa)
                assert (m.dropout, m.swa) == (dropout, swa)
    r = create_method("renofeation")
    assert (r.dropout, r.swa, r.lambda_feat, r.init_from_source, r.needs_teacher) == (0.1, True, 5.0, False, True)
    dr = create_method("delta-r")
    assert (dr.dropout, dr.swa, dr.lambda_feat, dr.init_from_source) == (0.0, False, 5.0, False)
    assert create_method("delta", lambda_feat=2.0).lambda_feat == 2.0


# ------------------------------------------------------------------------------ init
def test_ft_copies_source_weights_and_resets_head_when_class_count_differs():
    source = trained_source()
    target = create_method("ft").prepare(dtn(10, seed=5), source, num_classes=5)
    assert target.num_classes == 5
    src = source.state_dict()
    for k, v in target.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(v, src[k]), k
    # same class count: the head is copied too ...
    same = create_method("ft").prepare(dtn(10, seed=6), source, num_classes=10)
    assert torch.equal(same.head.weight, source.head.weight)
    # ... unless reset_head=True
    reset = create_method("ft", reset_head=True).prepare(dtn(10, seed=6), source, num_classes=10)
    assert not torch.equal(reset.head.weight, source.head.weight)
    assert torch.equal(reset.stages[0][0].weight, source.stages[0][0].weight)


def test_ft_without_source_or_wrong_arch_raises():
    with pytest.raises(ConfigError, match="source"):
        create_method("ft").prepare(dtn(), None, 10)


def test_scratch_reinitialises_everything_and_ignores_source():
    source = trained_source()
    model = create_method("ft").prepare(dtn(10, seed=3), source, 10)
    model = create_method("scratch").prepare(model, source, 7)
    assert model.num_classes == 7
    assert not torch.equal(model.stages[0][0].weight, source.stages[0][0].weight)
    bn = model.stages[0][1]
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))


def test_commoninit_records_third_model_origin():
    m = create_method("commoninit")
    m.prepare(dtn(), trained_source(), 10)
    assert m.describe()["init_origin"].startswith("third model")


def test_dropout_option_sets_spatial_dropout():
    model = create_method("renofeation").prepare(dtn(), None, 10)
    assert all(isinstance(d, torch.nn.Dropout2d) and d.p == 0.1 for d in model.drop)
    model = create_method("delta").prepare(dtn(), trained_source(), 10)
    assert all(isinstance(d, torch.nn.Identity) for d in model.drop)


# ------------------------------------------------------------------------ regularisers
def test_l2sp_regularizer_matches_hand_computed_value():
    source = trained_source()
    method = create_method("l2sp", alpha=0.3, beta=0.7)
    model = method.prepare(dtn(10, seed=2), source, num_classes=4)
    feats = torch.zeros(2, 512)
    with torch.no_grad():
        model.stages[0][0].weight[0, 0, 0, 0] += 0.5
        model.stages[1][1].bias[3] -= 2.0
        model.head.weight.fill_(0.1)      # 4×512 entries
        model.head.bias.copy_(torch.tensor([1.0, 2.0, 0.0, -1.0]))
    reg = method.regularizer(model, torch.zeros(2, 3, 32, 32), [], feats, None)
    expected = 0.3 * (0.5**2 + 2.0**2) + 0.7 * (4 * 512 * 0.01 + 1 + 4 + 1)
    assert reg.item() == pytest.approx(expected, rel=1e-5)
    # the regulariser replaces weight decay on both groups
    groups = method.parameter_groups(model, TrainConfig(iterations=1, weight_decay=5e-4))
    assert [g["weight_decay"] for g in groups] == [0.0, 0.0]
    # unperturbed model: zero backbone term
    fresh = create_method("l2sp", alpha=1.0, beta=0.0)
    m2 = fresh.prepare(dtn(10, seed=2), source, 10)
    assert fresh.regularizer(m2, torch.zeros(1), [], feats, None).item() == 0.0


def test_delta_regularizer_equals_manual_mse_of_stage_outputs():
    teacher = trained_source()
    method = create_method("delta", lambda_feat=0.25)
    student = method.prepare(dtn(10, seed=4), teacher, 10)
    with torch.no_grad():
        student.stages[1][0].weight.mul_(1.5)   # make the stages differ
    x = digits_split(100, 8).images()
    student.eval()
    s_outs, feats = student.forward_stages(x)
    t_outs, _ = teacher.forward_stages(x)
    manual = sum(((s - t) ** 2).sum() / s.numel() for s, t in zip(s_outs, t_outs, strict=True))
    reg = method.regularizer(student, x, s_outs, feats, t_outs)
    assert reg.item() == pytest.approx(0.25 * manual.item(), rel=1e-5)
    assert reg.item() > 0
    with pytest.raises(ConfigError, match="teacher"):
        method.regularizer(student, x, s_outs, feats, None)


def test_delta_attention_weights_and_regularizer():
    teacher = trained_source()
    data = digits_split(200, 8)
    x, y = data.images(), data.y
    method = create_method("delta-attention", lambda_feat=2.0, attention_samples=8, probe_steps=20)
    student = method.prepare(dtn(10, seed=7), teacher, 10)
    method.setup(student, teacher, data, torch.device("cpu"))   # computes the channel weights
    weights = method.channel_weights
    assert set(method.state_dict()) == {"attention.0", "attention.1", "attention.2"}
    assert [len(w) for w in weights] == [64, 128, 256]
    for w in weights:
        assert w.sum().item() == pytest.approx(1.0, abs=1e-5) and (w > 0).all()
    assert weights[2].max() > weights[2].min()
    # recompute one weight by hand: zero channel 5 of stage 2, loss increase, softmax
    with torch.no_grad():
        outs, feats = teacher.forward_stages(x)
        probe = fit_probe(feats, y, 10, steps=20)
        base = F.cross_entropy(probe(feats), y)
        inc = []
        for c in range(256):
            h = outs[2].clone()
            h[:, c] = 0
            inc.append(F.cross_entropy(probe(_forward_from(teacher, 2, h)), y) - base)
        manual = torch.softmax(torch.stack(inc), 0)
    torch.testing.assert_close(weights[2], manual, rtol=1e-4, atol=1e-7)

    with torch.no_grad():
        student.stages[0][0].weight.mul_(0.5)
    student.eval()
    s_outs, s_feats = student.forward_stages(x)
    # uniform weights reduce to the plain DELTA MSE
    method.channel_weights = [torch.full((c,), 1.0 / c) for c in (64, 128, 256)]
    plain = create_method("delta", lambda_feat=2.0)
    torch.testing.assert_close(method.regularizer(student, x, s_outs, s_feats, outs),
                               plain.regularizer(student, x, s_outs, s_feats, outs))
    # one-hot weights pick a single channel's mean squared distance
    method.channel_weights = [torch.zeros(64), torch.zeros(128), torch.zeros(256)]
    method.channel_weights[0][3] = 1.0
    expected = 2.0 * ((s_outs[0][:, 3] - outs[0][:, 3]) ** 2).mean()
    torch.testing.assert_close(method.regularizer(student, x, s_outs, s_feats, outs), expected)


# ------------------------------------------------------------------------ linear probe
def test_linear_probe_freezes_backbone_and_bn_statistics():
    source = trained_source()
    method = create_method("linear")
    assert isinstance(method, LinearProbe)
    model = method.prepare(dtn(10, seed=8), source, num_classes=10)
    assert not torch.equal(model.head.weight, source.head.weight)   # always a new head
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert all(not p.requires_grad for p in model.backbone_parameters())
    cfg = TrainConfig(iterations=4, batch_size=16, lr=0.1, progress=False, device="cpu",
                      swa={"iterations": 2, "average_every": 1})
    result = fit(model, method, digits_split(0, 64), digits_split(64, 32), cfg)
    after = result.model.state_dict()
    for k, v in before.items():
        if k.startswith("head."):
            assert not torch.equal(after[k], v), k
        else:
            assert torch.equal(after[k], v), k      # weights AND BN running stats, bit-identical
    assert result.swa_used

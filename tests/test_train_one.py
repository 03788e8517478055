"""``train_one`` trains exactly what the hand-written seed → build → prepare → fit sequence does."""

from __future__ import annotations

import pytest
import torch

from transferguard.data import load_domain
from transferguard.methods import create_method
from transferguard.models import create_model
from transferguard.training import TrainConfig, fit, train_one
from transferguard.utils import seed_everything

SETTINGS = {"iterations": 3, "batch_size": 16, "eval_every": 2, "device": "cpu", "progress": False}


@pytest.fixture(scope="module")
def dom():
    return load_domain("ucidigits", size=32, n_train_per_class=4)


@pytest.fixture(scope="module")
def parent(dom):
    torch.manual_seed(5)
    return create_model("dtn", dom.num_classes)


def _by_hand(dom, method_name: str, parent, seed: int, norm: bool = False):
    seed_everything(seed)
    model = create_model("dtn", dom.num_classes)
    method = create_method(method_name)
    model = method.prepare(model, parent, dom.num_classes)
    if norm:
        model.normalize.mean.fill_(0.5)
    teacher = parent if method.needs_teacher else None
    return fit(model, method, dom.train, dom.val, TrainConfig(**SETTINGS, seed=seed),
               teacher=teacher).model


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(("method", "with_parent"), [("scratch", False), ("ft", True),
                                                     ("renofeation", True)])
def test_same_weights_as_the_steps_by_hand(dom, parent, method, with_parent) -> None:
    src = parent if with_parent else None
    got = train_one("dtn", method, dom.train, dom.val, SETTINGS, seed=3,
                    num_classes=dom.num_classes, parent=src).model
    assert _same(got, _by_hand(dom, method, src, seed=3))


def test_builder_method_instance_and_hook(dom, parent) -> None:
    seen = []

    def hook(model) -> None:
        seen.append(model)
        model.normalize.mean.fill_(0.5)

    got = train_one(lambda n: create_model("dtn", n), create_method("ft"), dom.train, dom.val,
                    SETTINGS, seed=1, num_classes=dom.num_classes, parent=parent,
                    on_prepared=hook).model
    assert seen == [got]
    assert _same(got, _by_hand(dom, "ft", parent, seed=1, norm=True))
    with pytest.raises(TypeError, match="method_options"):
        train_one("dtn", create_method("ft"), dom.train, dom.val, SETTINGS, seed=1,
                  num_classes=dom.num_classes, parent=parent, method_options={"dropout": 0.1})

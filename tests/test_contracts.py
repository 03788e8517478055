"""Contract tests over every registry entry: a new architecture or transfer method is covered by
registering it, with no test to write first.

Architectures: built with 3 classes, a [0, 1] batch gives finite logits and stage outputs of the
declared shapes, and the model rebuilds from its own ``config()``. Methods: prepared from a
source DTN and trained for two steps by the one loop, each yields finite losses, trainable
parameter groups, and a model in eval mode whose head has the target's classes.
"""

from __future__ import annotations

import pytest
import torch

from test_methods import digits_split
from transferguard.methods import create_method, list_methods
from transferguard.models import create_model
from transferguard.models.registry import ARCHS, arch_info
from transferguard.training import TrainConfig, fit

torch.set_num_threads(1)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_architecture_meets_the_model_contract(arch):
    info = arch_info(arch)
    torch.manual_seed(0)
    model = create_model(arch, 3).eval()
    side = 64 if arch.startswith("efficientnet") else 32
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)
        outs, feats = model.forward_stages(x)
    assert logits.shape == (1, 3) and torch.isfinite(logits).all()
    assert len(outs) == info["num_stages"] == len(model.stage_names)
    assert feats.shape == (1, model.feature_dim)
    config = model.config()
    assert config["arch"] in ARCHS and config["num_classes"] == 3
    rebuilt = create_model(**config)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes


@pytest.mark.parametrize("name", list_methods())
def test_every_method_trains_through_the_one_loop(name):
    torch.manual_seed(0)
    source = create_model("dtn", 10).eval()
    method = create_method(name)
    model = method.prepare(create_model("dtn", 10), source, 10)
    cfg = TrainConfig(epochs=None, iterations=2, batch_size=16, eval_every=1, seed=0,
                      progress=False)
    result = fit(model, method, digits_split(0, 32), digits_split(48, 16), cfg,
                 teacher=source if method.needs_teacher else None)
    assert result.iterations_run >= 2 and not model.training  # + an SWA stage where the method has one
    losses = [h["train_loss"] for h in result.history if h["train_loss"] is not None]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert model.head.out_features == 10
    assert method.parameter_groups(model, cfg)
    assert isinstance(method.describe(), dict)

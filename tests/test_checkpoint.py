"""Checkpoint round trips and refusal of unsafe, corrupt or mismatched weight files."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from transferguard.errors import CheckpointError
from transferguard.models import (
    create_model,
    load_checkpoint,
    load_weights_file,
    load_weights_into,
    read_sidecar,
    save_checkpoint,
)

torch.set_num_threads(1)


def _trained(arch: str, classes: int = 4, **kw) -> torch.nn.Module:
    """A model with non-default weights and BN statistics (one SGD step in train mode)."""
    torch.manual_seed(0)
    model = create_model(arch, classes, **kw)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.rand(8, 3, 32, 32)
    loss = torch.nn.functional.cross_entropy(model(x), torch.arange(8) % classes)
    loss.backward()
    opt.step()
    return model.eval()


@pytest.mark.parametrize(("arch", "kw"), [("dtn", {}), ("wrn-16-4", {"spatial_dropout": 0.1})])
def test_round_trip_identical_outputs(tmp_path, arch, kw):
    model = _trained(arch, **kw)
    meta = {"classes": ["a", "b", "c", "d"], "domain": "mnist", "method": "finetune",
            "parent": None, "seed": 3, "metrics": {"val_acc": 0.5}}
    out = save_checkpoint(model, tmp_path / "runs" / "model", meta)
    assert out == tmp_path / "runs" / "model.safetensors" and out.is_file()
    sidecar = json.loads((tmp_path / "runs" / "model.json").read_text())
    assert sidecar["config"] == model.config() and sidecar["domain"] == "mnist"
    assert sidecar["format_version"] == 1
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.endswith(".tmp")]
    loaded, info = load_checkpoint(out)  # the .safetensors name works as well as the stem
    assert info["metrics"] == {"val_acc": 0.5} and info["classes"] == meta["classes"]
    assert not loaded.training and loaded.config() == model.config()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_round_trip_efficientnet_without_weight_package_access(tmp_path):
    torch.manual_seed(1)
    model = create_model("efficientnet_lite0", 3, dropout_rate=0.1).eval()
    save_checkpoint(model, tmp_path / "lite", {"domain": "x"})
    loaded, _ = load_checkpoint(tmp_path / "lite")
    assert loaded.config()["dropout_rate"] == 0.1
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_shared_and_noncontiguous_tensors_are_saved(tmp_path):
    model = create_model("dtn", 3)
    with torch.no_grad():
        # A transposed view: non-contiguous storage behind a parameter.
        model.head.weight = torch.nn.Parameter(torch.rand(512, 3).t())
    assert not model.head.weight.is_contiguous()
    save_checkpoint(model, tmp_path / "nc", {})
    loaded, _ = load_checkpoint(tmp_path / "nc")
    assert torch.equal(loaded.head.weight, model.head.weight)


def test_reserved_meta_and_tampered_weights(tmp_path):
    model = create_model("dtn", 2)
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(model, tmp_path / "m", {"config": {}})
    path = save_checkpoint(model, tmp_path / "m", {})
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(tmp_path / "m")
    with pytest.raises(CheckpointError, match="sidecar not found"):
        load_checkpoint(tmp_path / "absent")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        read_sidecar(tmp_path / "bad")


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": _Evil(str(marker))}, evil)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused") as err:
        load_weights_file(evil)
    assert "\n" not in str(err.value)
    assert not marker.exists()
    # A legacy (non-zip) raw pickle is refused the same way.
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(CheckpointError):
        load_weights_file(raw)
    assert not marker.exists()


def test_garbage_missing_and_corrupt_files(tmp_path):
    garbage = tmp_path / "weights.bin"
    garbage.write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match="neither a safetensors nor a PyTorch"):
        load_weights_file(garbage)
    fake = tmp_path / "fake.safetensors"
    fake.write_text("this is not a tensor file")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_weights_file(fake)
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.ones(100)}, str(good))
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes(good.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_weights_file(truncated)
    with pytest.raises(CheckpointError, match="not found"):
        load_weights_file(tmp_path / "nope.pth")
    broken_zip = tmp_path / "broken.pth"
    with zipfile.ZipFile(broken_zip, "w") as zf:
        zf.writestr("archive/data.pkl", b"junk")
    with pytest.raises(CheckpointError):
        load_weights_file(broken_zip)


def test_non_tensor_payload_and_nan_refused(tmp_path):
    p = tmp_path / "lists.pth"
    torch.save({"weight": [1.0, 2.0]}, p)
    with pytest.raises(CheckpointError, match="non-tensor entry 'weight'"):
        load_weights_file(p)
    p2 = tmp_path / "scalar.pth"
    torch.save(3, p2)
    with pytest.raises(CheckpointError, match="does not contain a state dict"):
        load_weights_file(p2)
    state = create_model("dtn", 2).state_dict()
    state["head.weight"] = state["head.weight"].clone()
    state["head.weight"][0, 0] = float("nan")
    nan_st = tmp_path / "nan.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(nan_st))
    with pytest.raises(CheckpointError, match="NaN or infinite values in 'head.weight'"):
        load_weights_file(nan_st)
    state["head.weight"][0, 0] = float("inf")
    nan_pth = tmp_path / "inf.pth"
    torch.save(state, nan_pth)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_weights_file(nan_pth)


def test_containers_and_module_prefix_are_unwrapped(tmp_path):
    model = _trained("dtn", 3)
    wrapped = {"epoch": 4, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    p = tmp_path / "wrapped.pth"
    torch.save(wrapped, p)
    state = load_weights_file(p)
    fresh = create_model("dtn", 3)
    load_weights_into(fresh, state)
    fresh.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))


def test_shape_mismatch_is_readable():
    state = create_model("dtn", 10).state_dict()
    with pytest.raises(CheckpointError) as err:
        load_weights_into(create_model("dtn", 5), state)
    msg = str(err.value)
    assert "shape mismatch" in msg and "head.weight (10, 512) vs (5, 512)" in msg
    assert "\n" not in msg
    # A backbone-only load keeps a fresh head when the class count differs.
    target = create_model("dtn", 5)
    left = load_weights_into(target, state, skip_mismatched_head=True)
    assert set(left) == {"head.weight", "head.bias"}
    state.pop("stages.0.0.weight")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing: stages\.0\.0\.weight.*unexpected: extra"):
        load_weights_into(create_model("dtn", 10), state)


def test_pretrained_path_for_scratch_arch_loads_backbone(tmp_path):
    source = _trained("wrn-16-4", 10)
    save_checkpoint(source, tmp_path / "a", {})
    target = create_model("wrn-16-4", 3, pretrained=tmp_path / "a.safetensors").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(target.forward_features(x), source.forward_features(x))
    assert target.num_classes == 3


def test_tensors_sha256_identifies_the_weights_not_the_file(tmp_path):
    """The sidecar's tensors_sha256 is the same for the same weights written by two processes
    (the file's sha256 is not: safetensors writes header metadata in hash-map order)."""
    import subprocess
    import sys

    from transferguard.models.checkpoint import read_sidecar, tensors_sha256

    code = ("import sys, torch; from transferguard.models import create_model; "
            "from transferguard.models.checkpoint import save_checkpoint; torch.manual_seed(0); "
            "save_checkpoint(create_model('dtn', 10), sys.argv[1])")
    digests = set()
    for i in range(2):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / f"m{i}")], check=True)
        digests.add(read_sidecar(tmp_path / f"m{i}")["tensors_sha256"])
    assert len(digests) == 1
    torch.manual_seed(0)
    model = create_model("dtn", 10)
    assert digests == {tensors_sha256(model.state_dict())}
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-6  # one weight, one ulp-scale change
    assert tensors_sha256(model.state_dict()) not in digests

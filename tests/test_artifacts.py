"""Every artefact loads wherever that kind of input is taken, and nothing finished is overwritten.

A seconds-long stand-in for ``reproduce demo`` (the same CLI command, run folder and checkpoint
links, on tiny budgets) writes ``runs/…/checkpoints/``; ``attack``, ``audit`` and ``train --source``
then load those linked files, copied and renamed pairs, a bare safetensors and a PyTorch
state_dict through the one shared loader (:func:`transferguard.models.load_model`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cli_helpers import one_line, run
from transferguard.cli import main
from transferguard.errors import CheckpointError, ConfigError
from transferguard.experiments import EXPERIMENTS, Experiment
from transferguard.experiments.spec import DataSpec, TrainSpec
from transferguard.models import load_model
from transferguard.papers.paper1 import report as paper1_report
from transferguard.papers.paper1 import run as paper1

QUIET = ["--quiet", "--device", "cpu"]


def _tiny_demo_plan(scale: str, seeds: int) -> dict:
    """The demo's grid (A, B, C; Scratch / FT / CommonInit) on tiny real-digit budgets."""
    tiny = TrainSpec(epochs=None, iterations=4, batch_size=32, eval_every=2)
    task = paper1.make_task(DataSpec("mnist5k", n_train_per_class=8, n_test_per_class=3),
                            DataSpec("ucidigits", n_train_per_class=6, n_test_per_class=3),
                            DataSpec("mnist5k", n_train_per_class=8, n_test_per_class=2,
                                     split_seed=1), name="M→U")
    return paper1.make_plan("demo", scale, seeds, [task], strategies=("scratch", "ft", "commoninit"),
                            train={k: tiny for k in ("source", "common", "target", "finetune")},
                            eps_255=(4,))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run folder of the tiny demo: {'run': Path, 'ckpt': {label prefix: .safetensors path}}."""
    root = tmp_path_factory.mktemp("artifacts")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRANSFERGUARD_CACHE", str(root / "cache"))
    mp.setitem(EXPERIMENTS, "demo", Experiment("demo", "tiny demo", "paper1", _tiny_demo_plan,
                                               paper1.run_transfer_grid,
                                               paper1_report.build_report))
    code = main(["reproduce", "demo", "--out", str(root / "run"), "--store", str(root / "store"),
                 "--seeds", "1", "--backend", "serial", *QUIET])
    assert code == 0
    index = json.loads((root / "run" / "checkpoints" / "index.json").read_text())
    ckpt = {name: root / "run" / "checkpoints" / f"{name}.safetensors" for name in index}
    yield {"root": root, "run": root / "run", "store": root / "store", "ckpt": ckpt,
           "index": index}
    mp.undo()


def _pick(demo, prefix: str) -> Path:
    """The linked checkpoint whose name starts with ``prefix`` (e.g. 'a-scratch', 'b-ft')."""
    (path,) = [p for n, p in demo["ckpt"].items() if n.startswith(prefix)]
    return path


# ---------------------------------------------------------------------------- the round trip
def test_linked_checkpoints_attack_audit_and_train(demo, capsys, tmp_path):
    source, target = _pick(demo, "a-scratch"), _pick(demo, "b-ft")
    # the run folder links under other names than the store's: the user's path must win
    assert source.name != json.loads(source.with_suffix(".json").read_text())["weights_file"]
    code, out, err = run(capsys, "attack", "--target", target, "--source", source, "--domain",
                         "ucidigits", "--eps", "4/255", "--limit", "20", "--out",
                         tmp_path / "attack", *QUIET)
    assert code == 0, err
    df = pd.read_csv(tmp_path / "attack" / "results.csv")
    assert set(df.attack) == {"none", "fgsm-transfer"}

    code, out, err = run(capsys, "audit", "--source", source, "--target", target, "--data",
                         "ucidigits", "--eps", "4/255", "--limit", "12", "--pgd-steps", "1",
                         "--feature-steps", "1", "--candidates", "1", "--out",
                         tmp_path / "audit", *QUIET)
    assert code == 0, err
    assert (tmp_path / "audit" / "results.csv").exists()

    code, out, err = run(capsys, "train", "--domain", "ucidigits", "--n-per-class", "5",
                         "--method", "ft", "--source", source, "--iterations", "2",
                         "--batch-size", "16", "--out", tmp_path / "child", *QUIET)
    assert code == 0, err
    child = load_model(str(tmp_path / "child"), role="target")
    parent = load_model(str(source), role="source")
    # fine-tuning started from the linked source: the stem weights were copied from it (they moved
    # by two SGD steps, so compare shapes and that they are not a fresh initialisation's)
    assert child.sidecar["parent"] == str(source)
    assert child.model.stages[0][0].weight.shape == parent.model.stages[0][0].weight.shape


def test_one_loader_takes_every_form(demo, tmp_path):
    linked = _pick(demo, "b-ft")
    ref = load_model(str(linked), role="target")
    expected = ref.model.state_dict()

    def same(spec: str) -> None:
        got = load_model(spec, role="target").model.state_dict()
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected), spec

    # the sidecar or the stem name the same checkpoint
    same(str(linked.with_suffix(".json")))
    same(str(linked.with_suffix("")))
    # a copied and renamed pair
    shutil.copy(linked, tmp_path / "renamed.safetensors")
    shutil.copy(linked.with_suffix(".json"), tmp_path / "renamed.json")
    same(str(tmp_path / "renamed.safetensors"))
    # the weights alone: the safetensors header records the architecture
    shutil.copy(linked, tmp_path / "alone.safetensors")
    same(str(tmp_path / "alone.safetensors"))
    same(f"dtn:{tmp_path / 'alone.safetensors'}")
    # a PyTorch state_dict (read with weights_only=True) needs the architecture named
    torch.save(expected, tmp_path / "state.pt")
    same(f"dtn:{tmp_path / 'state.pt'}")
    with pytest.raises(ConfigError, match="name the architecture"):
        load_model(str(tmp_path / "state.pt"), role="target")
    # the wrong architecture for a checkpoint is refused
    with pytest.raises(CheckpointError, match="not 'wrn-16-2'|not 'wrn"):
        load_model(f"wrn-16-2:{linked}", role="target")


def test_sidecar_paired_with_other_weights_fails_the_checksum(demo, tmp_path, capsys):
    shutil.copy(_pick(demo, "b-scratch"), tmp_path / "mixed.safetensors")
    shutil.copy(_pick(demo, "b-ft").with_suffix(".json"), tmp_path / "mixed.json")
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(str(tmp_path / "mixed.safetensors"), role="target")
    code, _, err = run(capsys, "attack", "--target", tmp_path / "mixed.safetensors", "--domain",
                       "ucidigits", "--out", tmp_path / "a", *QUIET)
    assert "checksum" in one_line(code, err)


def test_missing_files_are_one_line(capsys, tmp_path):
    missing = tmp_path / "nope.safetensors"
    code, _, err = run(capsys, "attack", "--target", missing, "--domain", "ucidigits", "--out",
                       tmp_path / "o", *QUIET)
    assert "not found" in one_line(code, err)
    code, _, err = run(capsys, "train", "--domain", "ucidigits", "--source", missing, "--out",
                       tmp_path / "m", *QUIET)
    assert "not found" in one_line(code, err)


# ---------------------------------------------------------------------------- devices
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("device", ["cuda", "gpu", "cuda:1"])
def test_absent_gpu_is_one_line(demo, capsys, tmp_path, device):
    target = _pick(demo, "b-ft")
    for argv in (["attack", "--target", target, "--domain", "ucidigits", "--out", tmp_path / "a"],
                 ["audit", "--source", target, "--target", target, "--data", "ucidigits",
                  "--out", tmp_path / "b"],
                 ["train", "--domain", "ucidigits", "--out", tmp_path / "c"],
                 ["reproduce", "demo", "--out", tmp_path / "d", "--store", tmp_path / "s"]):
        code, _, err = run(capsys, *argv, "--quiet", "--device", device)
        assert "no usable CUDA GPU" in one_line(code, err), argv
    code, _, err = run(capsys, "attack", "--target", target, "--domain", "ucidigits",
                       "--device", "tpu9", "--out", tmp_path / "e")
    assert "unknown device" in one_line(code, err)


# ---------------------------------------------------------------------------- overwriting
def test_finished_results_are_never_overwritten_silently(demo, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = _pick(demo, "b-ft")
    attack = ["attack", "--target", target, "--domain", "ucidigits", "--eps", "4/255",
              "--limit", "10", *QUIET]
    for _ in range(2):
        code, out, err = run(capsys, *attack)
        assert code == 0, err
    first, second = Path("runs/attack/results.csv"), Path("runs/attack-2/results.csv")
    assert first.exists() and second.exists() and "runs/attack-2" in out
    code, _, err = run(capsys, *attack, "--out", "runs/attack")
    assert "--overwrite" in one_line(code, err)
    code, _, err = run(capsys, *attack, "--out", "runs/attack", "--overwrite")
    assert code == 0, err

    train = ["train", "--domain", "ucidigits", "--n-per-class", "3", "--iterations", "1",
             "--batch-size", "8", "--out", "m", *QUIET]
    assert run(capsys, *train)[0] == 0
    weights = Path("m.safetensors").read_bytes()
    code, _, err = run(capsys, *train[:-3], "--seed", "5", *QUIET)
    assert "--overwrite" in one_line(code, err)
    assert Path("m.safetensors").read_bytes() == weights

    # a run folder of one plan is not silently replaced by another plan's run
    code, _, err = run(capsys, "reproduce", "demo", "--out", demo["run"], "--store",
                       demo["store"], "--seeds", "2", "--backend", "serial", *QUIET)
    assert "--overwrite" in one_line(code, err)
    # …but the same plan again is a re-run that recomputes nothing
    code, out, err = run(capsys, "reproduce", "demo", "--out", demo["run"], "--store",
                         demo["store"], "--seeds", "1", "--backend", "serial", *QUIET)
    assert code == 0, err
    assert json.loads((demo["run"] / "run.json").read_text())["counters"]["trained"] == 0


def test_audit_refuses_a_finished_folder(demo, capsys, tmp_path):
    target = _pick(demo, "b-ft")
    argv = ["audit", "--source", target, "--target", target, "--data", "ucidigits", "--eps",
            "4/255", "--limit", "6", "--pgd-steps", "1", "--feature-steps", "1",
            "--candidates", "1", "--out", tmp_path / "au", *QUIET]
    assert run(capsys, *argv)[0] == 0
    code, _, err = run(capsys, *argv)
    assert "--overwrite" in one_line(code, err)
    assert run(capsys, *argv, "--overwrite")[0] == 0


# ---------------------------------------------------------------------------- audit data
def test_audit_uses_every_image_of_a_folder(demo, capsys, tmp_path):
    target = _pick(demo, "b-ft")
    folder = tmp_path / "imgs"
    images, labels = [], []
    gen = np.random.default_rng(0)
    for k in range(10):
        (folder / str(k)).mkdir(parents=True)
        for i in range(3):
            img = gen.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(img).save(folder / str(k) / f"{i}.png")
            images.append(img)
            labels.append(k)
    np.savez(tmp_path / "same.npz", images=np.stack(images), labels=np.array(labels))
    for i, data in enumerate((f"folder:{folder}", str(folder), str(tmp_path / "same.npz"))):
        out = tmp_path / f"out{i}"
        code, stdout, err = run(capsys, "audit", "--source", target, "--target", target, "--data",
                                data, "--eps", "4/255", "--pgd-steps", "1", "--feature-steps", "1",
                                "--candidates", "1", "--out", out, *QUIET)
        assert code == 0, err
        assert "Audit images: 30" in stdout, stdout
    # with a reference model some images must be held out for its training: it says how many
    code, stdout, err = run(capsys, "audit", "--source", target, "--target", target, "--data",
                            f"folder:{folder}", "--eps", "4/255", "--pgd-steps", "1",
                            "--feature-steps", "1", "--candidates", "1", "--train-reference",
                            "retrain", "--reference-iterations", "1", "--out", tmp_path / "ref",
                            *QUIET)
    assert code == 0, err
    assert "for the audit; the reference model trains on the other" in stdout, stdout

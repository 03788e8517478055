"""kill -9 during training loses at most the work since the last evaluation; the resumed run gives
bit-identical weights and the same results as an uninterrupted one.

The kill is deterministic: the training subprocess SIGKILLs itself right after its second save of
the training state, so the test never depends on timing.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transferguard.experiments import Runner, Store
from transferguard.experiments.spec import DataSpec, ModelSpec, TrainSpec

SPEC = ModelSpec(DataSpec("ucidigits", n_train_per_class=30), "dtn", seed=3,
                 train=TrainSpec(epochs=None, iterations=60, batch_size=32, eval_every=3,
                                 schedule="cosine"))

SCRIPT = """
import os, signal, sys, torch
torch.set_num_threads(1)
import transferguard.training.loop as loop
from transferguard.experiments import Runner, Store
from transferguard.experiments.spec import DataSpec, ModelSpec, TrainSpec

saves, real_save = [], loop.save_state
def save_then_die(path, state):
    out = real_save(path, state)
    saves.append(path)
    if len(saves) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return out
loop.save_state = save_then_die
Runner(Store(sys.argv[1]), device="cpu", progress=False).model(eval(sys.argv[2]))
"""


def run_killed(store: Path, spec: ModelSpec, after_saves: int) -> None:
    """Train ``spec`` in a subprocess that kills itself (SIGKILL) after ``after_saves`` saves."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(store), repr(spec), str(after_saves)],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -9, f"expected a SIGKILL, got {proc.returncode}:\n{proc.stderr}"


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the subprocess trains with one thread: compare like with like
    yield
    torch.set_num_threads(threads)


def test_killed_training_resumes_to_identical_weights(tmp_path: Path, one_thread, caplog) -> None:
    store = tmp_path / "killed"
    run_killed(store, SPEC, after_saves=2)
    partial = Store(store).partial_path(f"{SPEC.key()}-0")
    assert partial.exists() and not Store(store).has_model(SPEC.key())

    resumed_runner = Runner(Store(store), device="cpu", progress=False)
    with caplog.at_level(logging.INFO, logger="transferguard"):
        resumed, meta = resumed_runner.model(SPEC)
    assert "at iteration 6" in caplog.text  # the second evaluation (eval_every=3)
    straight, _ = Runner(Store(tmp_path / "straight"), device="cpu", progress=False).model(SPEC)
    assert resumed_runner.counters["trained"] == 1
    assert not partial.exists()  # the finished model replaced the partial state
    for (k, a), (_, b) in zip(resumed.state_dict().items(), straight.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert meta["hp_trials"][0]["iterations"] == 60

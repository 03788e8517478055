"""kill -9 during training loses at most the work since the last evaluation; the resumed run gives
bit-identical weights and the same results as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from transferguard.experiments import Runner, Store
from transferguard.experiments.spec import DataSpec, ModelSpec, TrainSpec

SPEC = ModelSpec(DataSpec("ucidigits", n_train_per_class=30), "dtn", seed=3,
                 train=TrainSpec(epochs=None, iterations=60, batch_size=32, eval_every=3,
                                 schedule="cosine"))

SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from transferguard.experiments import Runner, Store
from transferguard.experiments.spec import DataSpec, ModelSpec, TrainSpec
spec = eval(sys.argv[2])
Runner(Store(sys.argv[1]), device="cpu", progress=False).model(spec)
"""


def test_killed_training_resumes_to_identical_weights(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    store = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(store), repr(SPEC)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    partial = Store(store).partial_path(f"{SPEC.key()}-0")
    deadline = time.time() + 240
    while not partial.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.3)  # let it get a few evaluations further
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert partial.exists() and not Store(store).has_model(SPEC.key())

    resumed_runner = Runner(Store(store), device="cpu", progress=False)
    resumed, meta = resumed_runner.model(SPEC)
    straight, _ = Runner(Store(tmp_path / "straight"), device="cpu", progress=False).model(SPEC)
    assert resumed_runner.counters["trained"] == 1
    assert not partial.exists()  # the finished model replaced the partial state
    for (k, a), (_, b) in zip(resumed.state_dict().items(), straight.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert meta["hp_trials"][0]["iterations"] == 60

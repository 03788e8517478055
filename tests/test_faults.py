"""Faults the experiment store and runner survive, each on real data and models.

Tiny DTNs on the offline ``ucidigits``/``mnist5k`` domains run a real paper-1 grid (3 models, 3
crafted FGSM batches, 2 evaluation units). Every fault is injected deterministically: corrupted
files, subprocesses that SIGKILL themselves at the N-th store write, a disk that fills up at the
N-th write, a store that denies writes at the system-call level (so it works as root, where chmod
does not). After each fault the store must hold no half or corrupt entry that a run would trust,
and a re-run must recompute only what was not finished and give the uninterrupted table exactly.
Training with kill -9 is tests/test_resume.py.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from test_experiments import _tiny_plan1
from transferguard.cli import main
from transferguard.errors import StoreError
from transferguard.experiments import Runner, Store
from transferguard.experiments.backends import waves
from transferguard.experiments.reproduce import results_frame
from transferguard.experiments.spec import DataSpec, ModelSpec, TrainSpec
from transferguard.models import load_checkpoint
from transferguard.papers.paper1 import run as paper1
from transferguard.papers.paper1.plan import Paper1Plan
from transferguard.training.state import load_state, save_state

TESTS = Path(__file__).parent
SPEC = ModelSpec(DataSpec("ucidigits", n_train_per_class=12), "dtn", seed=1,
                 train=TrainSpec(epochs=None, iterations=12, batch_size=32, eval_every=3))
FULL = {"trained": 3, "loaded": 0, "crafted": 3, "eval_cached": 0, "evaluated": 2}


def grid_plan() -> Paper1Plan:
    """Models A, B scratch, B ft; FGSM batches on B scratch, B ft and A; two evaluation units."""
    return replace(_tiny_plan1(), strategies=("scratch", "ft"))


@contextmanager
def one_thread() -> Iterator[None]:
    """Subprocesses run with one thread: every comparison is like with like, bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def work(runner: Runner) -> dict[str, int]:
    """What a run computed or took from the store (models loaded vary with what it needed)."""
    return {k: v for k, v in runner.counters.items() if k != "loaded"}


def run_grid(root: Path) -> tuple[Runner, pd.DataFrame]:
    runner = Runner(Store(root), device="cpu", progress=False)
    return runner, results_frame(paper1.run_transfer_grid(runner, grid_plan()))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """An uninterrupted run of the grid: its complete store and its table."""
    root = tmp_path_factory.mktemp("reference")
    with one_thread():
        runner, df = run_grid(root)
    assert runner.counters == FULL
    return root, df


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor], dict]:
    """SPEC trained uninterrupted: its store, weights and sidecar."""
    root = tmp_path_factory.mktemp("trained")
    with one_thread():
        model, meta = Runner(Store(root), device="cpu", progress=False).model(SPEC)
    return root, {k: v.clone() for k, v in model.state_dict().items()}, meta


def copy_store(src: Path, dst: Path, *subs: str) -> Path:
    for sub in subs:
        shutil.copytree(src / sub, dst / sub)
    return dst


def count(root: Path, sub: str, pattern: str = "*") -> int:
    """Entries in a store folder (temporary ``.*.tmp`` files are not entries)."""
    return sum(not p.name.startswith(".") for p in (root / sub).glob(pattern))


def assert_same_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert list(got) == list(state)
    for k, v in state.items():
        assert torch.equal(got[k], v), k


def assert_consistent(root: Path, *, stale_tmp: int = 0) -> None:
    """Every entry reads and checksums; no half model; temporary files only from a kill -9."""
    store = Store(root)
    for weights in (root / "models").glob("*.safetensors"):
        assert weights.with_suffix(".json").exists(), f"half entry {weights}"
        load_checkpoint(weights.with_suffix(""))  # raises on a checksum mismatch
    for sidecar in (root / "models").glob("*.json"):
        assert sidecar.with_suffix(".safetensors").exists(), f"half entry {sidecar}"
    for path in (root / "evals").glob("*.json"):
        assert store.get_eval(path.stem) is not None, path
    for path in (root / "crafted").glob("*.safetensors"):
        assert store.get_crafted(path.stem) is not None, path
    for path in (root / "partial").glob("*.pt"):
        load_state(path)
    assert len(list(root.rglob(".*.tmp"))) == stale_tmp


# ------------------------------------------------------------------------- (a) corrupt entries
def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def garbage(path: Path) -> None:
    path.write_bytes(b"\x00not a store entry {" * 8)


def bitflip(path: Path) -> None:
    """A silent change that still parses: a digit of a JSON value, or a byte of tensor data."""
    data = bytearray(path.read_bytes())
    if path.suffix == ".json":
        i = data.index(b'"value": ') + len(b'"value": ')
        while not chr(data[i]).isdigit():
            i += 1
        data[i] = ord(str((int(chr(data[i])) + 1) % 10))
    else:
        data[-4] ^= 0x01  # low mantissa byte of the last float
    path.write_bytes(bytes(data))


CORRUPT: dict[str, Callable[[Path], None]] = {"truncated": truncate, "garbage": garbage,
                                              "bitflip": bitflip}


@pytest.mark.parametrize("fault", ["weights-truncated", "weights-bitflip", "sidecar-garbage"])
def test_corrupt_model_is_moved_aside_and_retrained(trained, tmp_path, caplog, fault) -> None:
    src, state, _ = trained
    root = copy_store(src, tmp_path / "store", "models")
    weights, sidecar = Store(root).model_files(SPEC.key())
    part, how = fault.split("-")
    CORRUPT[how](weights if part == "weights" else sidecar)
    runner = Runner(Store(root), device="cpu", progress=False)
    with caplog.at_level(logging.WARNING, logger="transferguard"):
        runner.hp_columns(SPEC)  # the sidecar alone, as a report reads it
        model, _ = runner.model(SPEC)
    assert runner.counters["trained"] == 1 and runner.counters["loaded"] == 0
    assert "unusable store entry" in caplog.text
    assert sorted(p.name for p in (root / "corrupt").iterdir()) == sorted([weights.name, sidecar.name])
    assert_same_weights(model, state)
    assert_consistent(root)


@pytest.mark.parametrize("fault", sorted(CORRUPT))
def test_corrupt_evaluations_and_crafted_batches_are_recomputed(reference, tmp_path, caplog,
                                                                fault) -> None:
    src, ref = reference
    root = copy_store(src, tmp_path / "store", "models", "partial", "crafted", "evals")
    entries = [*(root / "evals").glob("*.json"), *(root / "crafted").glob("*.safetensors")]
    for path in entries:
        CORRUPT[fault](path)
    with caplog.at_level(logging.WARNING, logger="transferguard"):
        runner, df = run_grid(root)
    assert runner.counters == {**FULL, "trained": 0, "loaded": 3}
    assert count(root, "corrupt") == len(entries) == 5
    assert caplog.text.count("unusable store entry") == 5
    pd.testing.assert_frame_equal(df, ref)
    assert_consistent(root)


@pytest.mark.parametrize("fault", ["truncated", "garbage", "foreign"])
def test_corrupt_training_state_restarts_from_scratch(trained, tmp_path, caplog, monkeypatch,
                                                      fault) -> None:
    import transferguard.training.loop as loop

    _, state, _ = trained
    root = tmp_path / "store"

    class Stopped(BaseException):
        pass

    saves, real_save = [], loop.save_state

    def save_then_stop(path, st):  # a real training state, as a killed run leaves it
        real_save(path, st)
        saves.append(path)
        if len(saves) == 2:
            raise Stopped

    with monkeypatch.context() as m:
        m.setattr(loop, "save_state", save_then_stop)
        with pytest.raises(Stopped):
            Runner(Store(root), device="cpu", progress=False).model(SPEC)
    partial = Store(root).partial_path(f"{SPEC.key()}-0")
    st = load_state(partial)
    assert st["iteration"] == 6
    if fault == "foreign":  # readable, but written by another training config
        save_state(partial, {**st, "config": "another config"})
    else:
        CORRUPT[fault](partial)
    runner = Runner(Store(root), device="cpu", progress=False)
    with caplog.at_level(logging.INFO, logger="transferguard"):
        model, _ = runner.model(SPEC)
    assert "unusable store entry" in caplog.text and "resumed from" not in caplog.text
    assert (root / "corrupt" / partial.name).exists() and not partial.exists()
    assert runner.counters["trained"] == 1
    assert_same_weights(model, state)  # a fresh start is the uninterrupted run
    assert_consistent(root)


# ------------------------------------------------------------ (b) and (c): other processes
GRID_SCRIPT = """
import json, os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
from test_faults import grid_plan
from transferguard.experiments import Runner, Store
from transferguard.papers.paper1 import run as paper1
from transferguard.experiments import store as store_module

root, out, mode, n = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])

def kill_at(owner, name, n, when=lambda *a, **k: True):
    real, calls = getattr(owner, name), []
    def hook(*a, **k):
        if when(*a, **k):
            calls.append(1)
            if len(calls) == n:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)
    setattr(owner, name, hook)

if mode == "craft":
    kill_at(Store, "put_crafted", n)
elif mode == "eval":
    kill_at(Store, "put_eval", n)
elif mode == "torn-eval":  # killed inside the write: the temporary file is never renamed
    kill_at(os, "replace", n, lambda src, dst, *a, **k: Path(dst).parent.name == "evals")
elif mode == "mark-waits":  # leave a marker whenever this process finds a lock taken
    fcntl = store_module.fcntl
    real_flock = fcntl.flock
    def flock(fd, op):
        try:
            return real_flock(fd, op | fcntl.LOCK_NB)
        except BlockingIOError:
            Path(out + f".waited-{os.getpid()}").touch()
            if op & fcntl.LOCK_NB:
                raise
            return real_flock(fd, op)
    fcntl.flock = flock
runner = Runner(Store(root), device="cpu", progress=False)
rows = paper1.run_transfer_grid(runner, grid_plan())
Path(out).write_text(json.dumps({"rows": rows, "counters": runner.counters}))
"""


def start_grid(root: Path, out: Path, mode: str = "none", n: int = 0) -> subprocess.Popen:
    """Run the grid in a subprocess; it writes ``out`` (rows, counters) and ``out.err``."""
    with open(out.with_suffix(".err"), "w") as err:
        return subprocess.Popen([sys.executable, "-c", GRID_SCRIPT, str(TESTS), str(root),
                                 str(out), mode, str(n)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                                stdout=subprocess.DEVNULL, stderr=err)


def test_two_processes_on_one_store_compute_each_entry_once(reference, tmp_path) -> None:
    _, ref = reference
    root = tmp_path / "store"
    store = Store(root)
    first = waves(paper1.needed_models(grid_plan()), lambda s: False)[0][0].key()
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    with store.lock(first):  # both processes must meet at the first model's lock
        procs = [start_grid(root, out, "mark-waits") for out in outs]
        deadline = time.monotonic() + 300  # a guard against a hang, not a synchronisation
        while len(list(tmp_path.glob("*.waited-*"))) < 2:
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                pytest.fail("the processes never met at the lock:\n"
                            + "\n".join(o.with_suffix(".err").read_text() for o in outs))
            time.sleep(0.05)
    for p, out in zip(procs, outs, strict=True):
        assert p.wait(timeout=300) == 0, out.with_suffix(".err").read_text()
    results = [json.loads(out.read_text()) for out in outs]
    total = {k: sum(r["counters"][k] for r in results) for k in FULL}
    # each entry computed once, by one process; the other waited and took it from the store
    assert total["trained"] == 3 and total["crafted"] == 3 and total["evaluated"] == 2
    assert total["eval_cached"] == 2
    tables = [results_frame(r["rows"]) for r in results]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    pd.testing.assert_frame_equal(tables[0], ref)
    assert count(root, "models", "*.json") == 3 and count(root, "crafted") == 3
    assert count(root, "evals") == 2 and count(root, "partial") == 0
    assert_consistent(root)


@pytest.mark.parametrize("mode, finished", [("craft", (1, 0)), ("eval", (3, 1)),
                                            ("torn-eval", (3, 1))], ids=["craft", "eval", "torn-eval"])
def test_kill_during_crafting_or_evaluation_recomputes_only_the_unfinished(
        reference, tmp_path, mode, finished) -> None:
    src, ref = reference
    root = copy_store(src, tmp_path / "store", "models")  # training: tests/test_resume.py
    out = tmp_path / "out.json"
    assert start_grid(root, out, mode, 2).wait(timeout=300) == -signal.SIGKILL, \
        out.with_suffix(".err").read_text()
    n_crafted, n_evals = finished
    assert (count(root, "crafted"), count(root, "evals")) == finished
    stale = 1 if mode == "torn-eval" else 0  # a kill -9 inside a write leaves an ignored temp file
    assert_consistent(root, stale_tmp=stale)
    runner, df = run_grid(root)
    assert work(runner) == {"trained": 0, "crafted": 3 - n_crafted, "eval_cached": n_evals,
                            "evaluated": 2 - n_evals}
    pd.testing.assert_frame_equal(df, ref)
    assert_consistent(root, stale_tmp=stale)


# --------------------------------------------------------------------- (d) a full disk
def disk_full(monkeypatch, kind: str, nth: int) -> None:
    """The disk fills up while the ``nth`` store entry of ``kind`` is written: half its payload
    reaches the temporary file, then ENOSPC (the atomic rename never happens)."""
    match = {"partial": lambda p: p.parent.name == "partial",
             "weights": lambda p: p.parent.name == "models" and p.suffix == ".safetensors",
             "sidecar": lambda p: p.parent.name == "models" and p.suffix == ".json",
             "crafted": lambda p: p.parent.name == "crafted",
             "eval": lambda p: p.parent.name == "evals"}[kind]
    real, calls = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if match(Path(dst)):
            calls.append(dst)
            if len(calls) == nth:
                with open(src, "r+b") as fh:
                    fh.truncate(os.path.getsize(src) // 2)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), src)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


FULL_DISK = r"cannot write to the store .*: no space left on device"


@pytest.mark.parametrize("kind", ["partial", "weights", "sidecar"])
def test_disk_full_while_training_leaves_the_store_consistent(trained, tmp_path, monkeypatch,
                                                              kind) -> None:
    _, state, meta = trained
    root = tmp_path / "store"
    with monkeypatch.context() as m:
        disk_full(m, kind, nth=2 if kind == "partial" else 1)
        with pytest.raises(StoreError, match=FULL_DISK):
            Runner(Store(root), device="cpu", progress=False).model(SPEC)
    assert_consistent(root)
    assert count(root, "models") == 0  # no weights without their sidecar
    partial = Store(root).partial_path(f"{SPEC.key()}-0")  # the earlier state is intact
    done = meta["hp_trials"][0]["iterations"]
    assert load_state(partial)["iteration"] == (3 if kind == "partial" else done)
    runner = Runner(Store(root), device="cpu", progress=False)
    model, _ = runner.model(SPEC)
    assert runner.counters["trained"] == 1
    assert_same_weights(model, state)
    assert_consistent(root)


@pytest.mark.parametrize("kind", ["crafted", "eval"])
def test_disk_full_while_evaluating_leaves_the_store_consistent(reference, tmp_path, monkeypatch,
                                                                kind) -> None:
    src, ref = reference
    root = copy_store(src, tmp_path / "store", "models")
    with monkeypatch.context() as m:
        disk_full(m, kind, nth=2)
        with pytest.raises(StoreError, match=FULL_DISK):
            run_grid(root)
    assert_consistent(root)
    n_crafted, n_evals = count(root, "crafted"), count(root, "evals")
    assert (n_crafted if kind == "crafted" else n_evals) == 1  # the write before is intact
    runner, df = run_grid(root)
    assert work(runner) == {"trained": 0, "crafted": 3 - n_crafted, "eval_cached": n_evals,
                            "evaluated": 2 - n_evals}
    pd.testing.assert_frame_equal(df, ref)
    assert_consistent(root)


# ------------------------------------------------------------------- (e) a read-only store
def read_only(monkeypatch, root: Path) -> None:
    """Deny every write under ``root`` at the system-call level, as a read-only mount does."""
    root = root.resolve()
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def inside(path) -> bool:
        return not isinstance(path, int) and Path(os.fsdecode(path)).resolve().is_relative_to(root)

    def deny(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    def guard(real, *, flags: bool = False):
        def call(path, *args, **kwargs):
            if inside(path) and (not flags or kwargs.get("flags", args[0] if args else 0) & writes):
                deny(path)
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", guard(os.open, flags=True))
    for name in ("mkdir", "replace", "rename", "unlink", "remove"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))


DENIED = r"cannot write to the store .*: permission denied"


def test_read_only_store_fails_with_one_clear_error(reference, tmp_path, monkeypatch) -> None:
    src, _ = reference
    root = copy_store(src, tmp_path / "store", "models", "partial", "crafted", "evals")
    next((root / "evals").glob("*.json")).unlink()  # one unit left to compute
    with monkeypatch.context() as m:
        read_only(m, root)
        with pytest.raises(StoreError, match=DENIED):
            run_grid(root)
        with pytest.raises(StoreError, match=DENIED):
            Store(root / "elsewhere")  # creating the folders is one clear error too
    assert count(root, "evals") == 1 and count(root, "crafted") == 3
    assert_consistent(root)


def test_read_only_store_still_serves_finished_work(reference, tmp_path, monkeypatch) -> None:
    src, ref = reference
    root = copy_store(src, tmp_path / "store", "models", "partial", "crafted", "evals")
    read_only(monkeypatch, root)
    runner, df = run_grid(root)
    assert work(runner) == {"trained": 0, "crafted": 0, "eval_cached": 2, "evaluated": 0}
    pd.testing.assert_frame_equal(df, ref)


@pytest.mark.parametrize("how", ["patched", "chmod"])
def test_cli_on_a_read_only_store_prints_one_line(tmp_path, monkeypatch, capsys, how) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root ignores folder permissions; the patched variant covers this case")
        folder.chmod(0o555)
    else:
        read_only(monkeypatch, folder)
    try:
        code = main(["reproduce", "demo", "--store", str(folder / "store"), "--out",
                     str(tmp_path / "run"), "--device", "cpu", "--quiet"])
    finally:
        folder.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("transferguard: error")]
    assert len(lines) == 1
    assert lines[0].startswith("transferguard: error: cannot write to the store ")
    assert lines[0].endswith(": permission denied")

"""Helpers shared by the CLI tests: run the CLI in-process, read its one-line error, and
register a seconds-long paper-1 experiment."""

from __future__ import annotations

from transferguard.cli import main
from transferguard.experiments import EXPERIMENTS, Experiment
from transferguard.experiments.spec import DataSpec, TrainSpec
from transferguard.papers.paper1 import report as paper1_report
from transferguard.papers.paper1 import run as paper1

TINY = TrainSpec(epochs=None, iterations=4, batch_size=32, eval_every=2)


def run(capsys, *argv) -> tuple[int, str, str]:
    """``transferguard ARGV`` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code: int, err: str) -> str:
    """The single ``transferguard: error: ...`` line of a usage error (exit 2)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("transferguard: error:"), err
    return lines[0]


def register_tiny(monkeypatch, name: str, *, eps_255: tuple[int, ...] = (4,),
                  default_seeds: dict[str, int] | None = None) -> None:
    """Register a seconds-long paper-1 experiment (U→M, Scratch vs FT) under ``name``."""

    def plan(scale: str, seeds: int) -> paper1.Paper1Plan:
        task = paper1.make_task(DataSpec("ucidigits", n_train_per_class=10, n_test_per_class=3),
                                DataSpec("mnist5k", n_train_per_class=5, n_test_per_class=3),
                                name="U→M")
        return paper1.make_plan(name, scale, seeds, [task], strategies=("scratch", "ft"),
                                train={k: TINY for k in ("source", "target", "finetune")},
                                eps_255=eps_255)

    extra = {"default_seeds": default_seeds} if default_seeds is not None else {}
    monkeypatch.setitem(EXPERIMENTS, name, Experiment(
        name, "test", "paper1", plan, paper1.run_transfer_grid, paper1_report.build_report, **extra))

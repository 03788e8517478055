"""What a new user meets first: help text, "did you mean", CLI-phrased hints, progress output,
``--quiet``, the attack table and ``python -m transferguard``."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys

import pandas as pd
import pytest
import torch

from cli_helpers import one_line, run
from transferguard._progress import PlainProgress, progress_bar
from transferguard.cli import build_parser, cli_message, eps_label, main
from transferguard.errors import DataError
from transferguard.models import create_model, save_checkpoint


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


# ---------------------------------------------------------------------------- help
def test_every_option_of_every_command_has_help():
    for name, parser in _subcommands().items():
        for action in parser._actions:
            assert action.help and action.help.strip(), (name, action.dest)


def test_help_lists_registry_names_and_defaults(capsys):
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in ("ucidigits", "renofeation", "delta-r", "efficientnet_lite0", "folder:<path>"):
        assert name in text, name
    assert "(default: dtn)" in text and "(default: scratch)" in text and "{names}" not in text
    assert main(["attack", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    from transferguard.attacks import SUITE

    assert f"one of: {', '.join(SUITE)} (default: fgsm)" in text


# ---------------------------------------------------------------------------- did you mean
@pytest.mark.parametrize(("argv", "suggestion"), [
    (["train", "--domain", "ucidigitz", "--out", "x"], "'ucidigits'"),
    (["train", "--domain", "ucidigits", "--method", "renofeaton", "--out", "x"], "'renofeation'"),
    (["train", "--domain", "ucidigits", "--arch", "resnet-18", "--out", "x"], "'resnet18'"),
    (["reproduce", "dmeo"], "'demo'"),
    (["reproduce", "demo", "--backend", "seriall"], "'serial'"),
])
def test_unknown_names_suggest_the_closest(capsys, tmp_path, argv, suggestion):
    code, _, err = run(capsys, *argv, "--device", "cpu", "--quiet")
    line = one_line(code, err)
    assert f"did you mean {suggestion}" in line, line


def test_unknown_attack_suggests_and_is_one_line(capsys, tmp_path):
    torch.manual_seed(0)
    save_checkpoint(create_model("dtn", 10), tmp_path / "m")
    code, _, err = run(capsys, "attack", "--target", tmp_path / "m.safetensors", "--domain",
                       "ucidigits", "--attack", "fgsn", "--out", tmp_path / "o", "--quiet")
    assert "did you mean 'fgsm'" in one_line(code, err)


# ---------------------------------------------------------------------------- hints
def test_hints_name_cli_flags_not_api_arguments(capsys):
    msg = cli_message(DataError("svhn: missing train_32x32.mat in /d; pass download=True to "
                                "fetch them with torchvision, or put the files there"))
    assert "download=True" not in msg
    assert "run `transferguard datasets --download svhn` to fetch them" in msg
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "download=True" not in out and "root=" not in out
    assert "under root" not in out  # the CLI's flag is --data-root (datasets: --root)


# ---------------------------------------------------------------------------- progress
def test_plain_progress_when_stderr_is_not_a_terminal(capsys, caplog):
    caplog.set_level(logging.INFO, logger="transferguard.progress")
    bar = progress_bar(range(200), desc="crafting")   # pytest's stderr is not a terminal
    assert isinstance(bar, PlainProgress)
    assert sum(1 for _ in bar) == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "transferguard.progress"]
    assert len(lines) == 10                            # one per 10 % of the work
    assert lines[-1].startswith("crafting: 200/200 it (100 %)")
    assert "\r" not in capsys.readouterr().err


def test_quiet_prints_only_the_summary(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--domain", "ucidigits", "--n-per-class", "3",
                         "--iterations", "2", "--batch-size", "8", "--out", tmp_path / "m",
                         "--device", "cpu", "--quiet")
    assert code == 0, err
    assert err.strip() == "" and out.count("\n") == 1 and "test acc" in out


# ---------------------------------------------------------------------------- attack output
def test_attack_table_and_self_describing_rows(capsys, tmp_path):
    torch.manual_seed(0)
    save_checkpoint(create_model("dtn", 10), tmp_path / "t")
    code, out, err = run(capsys, "attack", "--target", tmp_path / "t.safetensors", "--domain",
                         "ucidigits", "--eps", "2/255,8/255", "--limit", "16", "--out",
                         tmp_path / "o", "--device", "cpu", "--quiet")
    assert code == 0, err
    assert "NaN" not in out and "nan" not in out
    assert "8/255" in out and "0.031" not in out
    df = pd.read_csv(tmp_path / "o" / "results.csv")
    assert list(df.columns[:9]) == ["experiment", "task", "method", "arch", "seed", "attack",
                                    "eps", "metric", "value"]
    assert set(df.kind) == {"white-box"} and set(df.n_images) == {16}
    assert set(df.target) == set(df.crafted_on) == {str(tmp_path / "t.safetensors")}
    assert set(df.attack) == {"none", "fgsm-white"}


def test_eps_label_in_pixel_units():
    assert eps_label(8 / 255) == "8/255" and eps_label(0.0) == "0/255" and eps_label(0.03) == "0.03"


# ---------------------------------------------------------------------------- python -m
def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "transferguard", "reproduce", "--list"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "demo" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "transferguard", "reproduce", "nosuch"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("argv", [
    ["reproduce", "nosuch"],
    ["train", "--domain", "ucidigitz", "--out", "m"],
    ["train", "--domain", "ucidigits", "--arch", "resnet-18", "--out", "m"],
    ["train", "--domain", "ucidigits", "--method", "renofeaton", "--out", "m"],
    ["attack", "--target", "none.safetensors", "--domain", "ucidigits"],
    ["attack", "--target", "none.safetensors", "--domain", "ucidigits", "--eps", "2"],
])
def test_common_errors_import_no_torch(argv, tmp_path):
    """Start-up to a one-line error stays short: these paths never import torch (timed in
    benchmarks/, not here)."""
    code = ("import sys\nfrom transferguard.cli import main\n"
            f"rc = main({argv!r})\n"
            "print(rc, sorted(m for m in ('torch', 'torchvision', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=tmp_path)
    assert done.stdout.strip().splitlines()[-1] == "2 []", done.stdout + done.stderr


def _suite_names() -> list[str]:
    from transferguard.attacks import SUITE

    return list(SUITE)


@pytest.mark.parametrize("name", _suite_names())
def test_attack_command_runs_every_registry_entry(capsys, tmp_path, name):
    """The registry, not an if/else chain, decides what `attack --attack` can run."""
    torch.manual_seed(0)
    save_checkpoint(create_model("dtn", 10), tmp_path / "t")
    code, _, err = run(capsys, "attack", "--target", tmp_path / "t.safetensors", "--domain",
                       "ucidigits", "--attack", name, "--eps", "8/255", "--limit", "6",
                       "--steps", "1", "--out", tmp_path / "o", "--device", "cpu", "--quiet")
    assert code == 0, err
    df = pd.read_csv(tmp_path / "o" / "results.csv")
    assert set(df.attack) == {"none", f"{name}-white"} and set(df.n_images) == {6}

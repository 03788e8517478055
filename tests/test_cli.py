"""The command line end to end on real offline data: datasets, train, attack, reproduce, errors."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pandas as pd
import pytest

from cli_helpers import register_tiny, run
from transferguard.cli import main, parse_eps
from transferguard.errors import ConfigError
from transferguard.experiments import EXPERIMENTS, Experiment
from transferguard.experiments.legacy_runs import run_record_from_report
from transferguard.experiments.reproduce import _index_row, footer_markdown, rebuild_report
from transferguard.papers.paper1 import report as paper1_report
from transferguard.papers.paper1 import run as paper1


def test_parse_eps_pixel_units() -> None:
    assert parse_eps("8/255, 0.5") == [8 / 255, 0.5]
    for bad in ("2", "-1/255", "abc", ""):
        with pytest.raises(ConfigError):
            parse_eps(bad)


def test_datasets_lists_every_domain(capsys) -> None:
    code, out, _ = run(capsys, "datasets")
    assert code == 0
    for name in ("mnist5k", "ucidigits", "syndigits", "fashion", "cifar10-9", "cub200"):
        assert name in out


def test_reproduce_list(capsys) -> None:
    code, out, _ = run(capsys, "reproduce", "--list")
    assert code == 0
    assert all(name in out for name in EXPERIMENTS)


@pytest.mark.parametrize("argv", [
    ["reproduce", "no-such-experiment"],
    ["train", "--domain", "nope", "--out", "x"],
    ["train", "--domain", "ucidigits", "--method", "nope", "--out", "x", "--iterations", "1"],
])
def test_user_errors_are_one_line_exit_2(capsys, argv) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("transferguard: error:")
    assert "Traceback" not in err


def test_train_then_attack_white_box_and_transfer(capsys, tmp_path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    common = ["--iterations", "8", "--batch-size", "32", "--quiet", "--device", "cpu"]
    assert run(capsys, "train", "--domain", "mnist5k", "--n-per-class", "20", "--out", a, *common)[0] == 0
    code, out, _ = run(capsys, "train", "--domain", "ucidigits", "--n-per-class", "10", "--method", "ft",
                       "--source", a + ".safetensors", "--out", b, *common)
    assert code == 0 and "test acc" in out
    meta = json.loads((tmp_path / "b.json").read_text())
    assert meta["method"] == "ft" and meta["parent"].endswith("a.safetensors")

    for extra, name in (([], "fgsm-white"), (["--source", a + ".safetensors"], "fgsm-transfer")):
        out_dir = tmp_path / name
        code, _, err = run(capsys, "attack", "--target", b + ".safetensors", "--domain", "ucidigits",
                           "--eps", "0,8/255", "--limit", "64", "--out", str(out_dir), "--device", "cpu", *extra)
        assert code == 0, err
        df = pd.read_csv(out_dir / "results.csv")
        zero = df[(df.eps == 0) & (df.metric == "adv_acc")]["value"].iloc[0]
        clean = df[df.metric == "clean_acc"]["value"].iloc[0]
        assert zero == pytest.approx(clean)  # ε = 0 changes nothing
        assert set(df.attack) == {"none", name}


def test_attack_refuses_epsilon_outside_unit_interval(capsys, tmp_path, monkeypatch) -> None:
    # A real (untrained, fixed-seed) checkpoint, so the command gets as far as reading ε.
    import torch

    from transferguard.models import create_model, save_checkpoint

    monkeypatch.setenv("TRANSFERGUARD_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    weights = save_checkpoint(create_model("dtn", 10), tmp_path / "x")
    # Drop what saving logged: an earlier main() may have left logging bound to a closed
    # stream, whose "Logging error" report would otherwise land in this test's stderr.
    capsys.readouterr()
    for eps in ("8", "0,-1/255"):
        code, _, err = run(capsys, "attack", "--target", str(weights), "--domain", "ucidigits",
                           "--eps", eps, "--out", str(tmp_path / "out"), "--device", "cpu")
        assert code == 2 and "Traceback" not in err
        assert err.startswith("transferguard: error: ") and err.strip().count("\n") == 0, err
        assert "outside [0, 1]" in err and "ε" in err, err
    assert not (tmp_path / "out").exists()


# The closing paragraph of reports written before run folders had a run.json.
_LEGACY_FOOTER = (
    "Produced by `transferguard reproduce {name} --scale offline --seeds 1` in 123 s (models trained "
    "7, loaded from cache 1; evaluation units computed 2, cached 5). Training the 9 models it uses "
    "took 456 s when they were trained (the bulk of what a run with an empty store spends).\n"
    "Report rebuilt from `results.csv` by `transferguard reproduce {name} --report-only` "
    "(nothing recomputed).\n")


def test_run_record_migrated_from_legacy_footer(tmp_path) -> None:
    assert run_record_from_report(tmp_path) is None  # no report.md
    (tmp_path / "report.md").write_text("# x\n\n1 of 2 claims held on this run, 1 did not.\n")
    assert run_record_from_report(tmp_path) is None  # no footer
    (tmp_path / "report.md").write_text("# x\n\n---\n" + _LEGACY_FOOTER.format(name="fig4"))
    rec = run_record_from_report(tmp_path)
    assert rec == {"experiment": "fig4", "scale": "offline", "seeds": 1,
                   "command": "transferguard reproduce fig4 --scale offline --seeds 1",
                   "finished": None, "elapsed_s": 123,
                   "counters": {"trained": 7, "loaded": 1, "evaluated": 2, "eval_cached": 5},
                   "models": 9, "train_seconds": 456, "claims": None,
                   "migrated_from": "report.md footer"}
    # The footer written from a record is the legacy one, so old and new folders read the same.
    assert footer_markdown({**rec, "report_rebuilt": "2026-01-01T00:00:00+00:00"}) == (
        "\n---\n" + _LEGACY_FOOTER.format(name="fig4"))
    # A run on an accelerator names it (run.json's "device"; a CPU run's record has none).
    gpu = footer_markdown({**rec, "device": "cuda (NVIDIA H200)"})
    assert "--seeds 1` on cuda (NVIDIA H200) in 123 s (models trained" in gpu
    # ... and so does its row in the index of `reproduce all`, whose times are the CPU's otherwise.
    row, secs = _index_row("fig4", "what", {**rec, "device": "cuda (NVIDIA H200)"})
    assert "| 123 on cuda (NVIDIA H200) | 456 (9 models) |" in row and secs == 123
    assert "| 123 | 456 (9 models) |" in _index_row("fig4", "what", rec)[0]


def _register_tiny(monkeypatch, name: str) -> None:
    # one seed keeps these CLI tests seconds long
    register_tiny(monkeypatch, name, eps_255=(4, 16), default_seeds={"offline": 1, "paper": 1})


def test_reproduce_writes_a_complete_run_folder(capsys, tmp_path, monkeypatch) -> None:
    _register_tiny(monkeypatch, "tiny-cli")
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "reproduce", "tiny-cli", "--out", str(out), "--store",
                            str(tmp_path / "store"), "--quiet", "--device", "cpu", "--seeds", "2")
    assert code == 0, err
    for name in ("spec.json", "results.csv", "run.json", "report.md", "report.html", "run.log",
                 "clean_accuracy.png", "checkpoints/index.json"):
        assert (out / name).exists(), name
    run_rec = json.loads((out / "run.json").read_text())
    assert run_rec["command"] == "transferguard reproduce tiny-cli --scale offline --seeds 2"
    assert (run_rec["experiment"], run_rec["scale"], run_rec["seeds"]) == ("tiny-cli", "offline", 2)
    assert run_rec["counters"]["trained"] == 6 and run_rec["models"] == 6
    assert f"`{run_rec['command']}` in {run_rec['elapsed_s']:.0f} s" in (out / "report.md").read_text()
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns[:9]) == ["experiment", "task", "method", "arch", "seed", "attack", "eps",
                                    "metric", "value"]
    assert set(df.seed) == {0, 1}
    assert len(list((out / "checkpoints").glob("*.safetensors"))) == 6  # A, B scratch, B ft × 2 seeds
    assert "±" in (out / "report.md").read_text()


def test_reproduce_all_index_reports_shared_and_standalone_cost(tmp_path, monkeypatch) -> None:
    from transferguard.experiments.reproduce import reproduce_all

    _register_tiny(monkeypatch, "tiny-a")
    _register_tiny(monkeypatch, "tiny-b")  # the same models under another name: all shared
    kw = dict(out=tmp_path / "all", store=tmp_path / "store", device="cpu", progress=False,
              backend="serial")
    df, out = reproduce_all(names=["tiny-a", "tiny-b"], **kw)
    assert set(df.experiment) == {"tiny-a", "tiny-b"}
    index = (out / "report.md").read_text()
    rows = [line for line in index.splitlines() if line.startswith("| [tiny-")]
    assert len(rows) == 2
    # Both experiments use the same 3 models (A, B scratch, B ft): the second trains nothing but
    # its standalone cost still counts all three, read from the checkpoints' records.
    assert all(" (3 models) | 20" in line for line in rows)  # then the finish time (UTC)
    assert "models trained 0" in (out / "tiny-b" / "report.md").read_text()
    assert "models trained 3" in (out / "tiny-a" / "report.md").read_text()
    for name in ("tiny-a", "tiny-b"):  # a fully cached run still links the models it used
        assert len(list((out / name / "checkpoints").glob("*.safetensors"))) == 3

    # Each folder's run.json records the run; the claim counts are those of the report's findings.
    recs = {n: json.loads((out / n / "run.json").read_text()) for n in ("tiny-a", "tiny-b")}
    a = recs["tiny-a"]
    assert {"experiment", "scale", "seeds", "command", "finished", "elapsed_s", "counters",
            "models", "train_seconds", "claims"} <= set(a)
    assert a["command"] == "transferguard reproduce tiny-a --scale offline --seeds 1"
    assert datetime.fromisoformat(a["finished"]).utcoffset() == timedelta(0)
    assert a["elapsed_s"] > 0 and a["train_seconds"] > 0 and a["models"] == 3
    assert (a["counters"]["trained"], a["counters"]["loaded"]) == (3, 0)
    assert (f"(models trained 3, loaded from cache 0; evaluation units computed "
            f"{a['counters']['evaluated']}, cached {a['counters']['eval_cached']})"
            in (out / "tiny-a" / "report.md").read_text())
    assert recs["tiny-b"]["counters"]["trained"] == 0
    assert recs["tiny-b"]["train_seconds"] == pytest.approx(a["train_seconds"])
    plan = EXPERIMENTS["tiny-a"].plan("offline", 1)
    expected = paper1_report.build_report(df[df.experiment == "tiny-a"], tmp_path, plan).claims()
    assert a["claims"] == expected and expected["total"] > 0
    c = a["claims"]
    assert f"{c['held']} of {c['total']} claims held" in (out / "tiny-a" / "report.md").read_text()
    # The index is written from run.json, not from the reports.
    assert rows[0].removesuffix(" |").split(" | ")[2:5] == [
        f"{c['held']} / {c['total']}" + (f" ({c['unchecked']} not checkable)" if c["unchecked"] else ""),
        f"{a['elapsed_s']:.0f}", f"{a['train_seconds']:.0f} (3 models)"]

    # --report-only rebuilds every report and the index from results.csv, keeping the run times
    # and training cost that run.json recorded but recounting the claims.
    secs = [line.split(" | ")[3] for line in rows]
    code = main(["reproduce", "all", "--report-only", "--out", str(out)])
    assert code == 0
    assert (out / "tiny-a" / "report.md").read_text().count("Report rebuilt from") == 1
    again = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("| [tiny-")]
    assert [line.split(" | ")[3] for line in again] == secs
    rebuilt = json.loads((out / "tiny-a" / "run.json").read_text())
    assert {k: v for k, v in rebuilt.items() if k != "report_rebuilt"} == a
    assert datetime.fromisoformat(rebuilt["report_rebuilt"]) >= datetime.fromisoformat(a["finished"])

    tampered = {**a, "elapsed_s": 4242.0, "train_seconds": 777.0, "claims": {
        "held": 99, "failed": 0, "unchecked": 0, "total": 99}}
    (out / "tiny-a" / "run.json").write_text(json.dumps(tampered))
    assert main(["reproduce", "tiny-a", "--report-only", "--out", str(out / "tiny-a")]) == 0
    rebuilt = json.loads((out / "tiny-a" / "run.json").read_text())
    assert (rebuilt["elapsed_s"], rebuilt["train_seconds"], rebuilt["claims"]) == (4242.0, 777.0, c)
    md = (out / "tiny-a" / "report.md").read_text()
    assert "` in 4242 s (" in md and "took 777 s" in md and md.count("Report rebuilt from") == 1

    # A folder from before run.json existed: its record is migrated from the old report footer.
    (out / "tiny-b" / "run.json").unlink()
    old = (out / "tiny-b" / "report.md").read_text().split("\n---\n")[0]
    (out / "tiny-b" / "report.md").write_text(old + "\n---\n" + _LEGACY_FOOTER.format(name="tiny-b"))
    assert main(["reproduce", "all", "--report-only", "--out", str(out)]) == 0
    migrated = json.loads((out / "tiny-b" / "run.json").read_text())
    assert migrated["elapsed_s"] == 123 and migrated["train_seconds"] == 456
    assert migrated["counters"] == {"trained": 7, "loaded": 1, "evaluated": 2, "eval_cached": 5}
    assert migrated["claims"] == c  # same models and grid as tiny-a: same findings
    md = (out / "tiny-b" / "report.md").read_text()
    assert "` in 123 s (models trained 7, loaded from cache 1;" in md
    assert md.count("Report rebuilt from") == 1
    index = (out / "report.md").read_text()
    assert "| 4242 | 777 (3 models) |" in index and "| 123 | 456 (9 models) |" in index
    assert f"Sum of the seconds column: {(4242 + 123) / 60:.1f} min;" in index
    assert "| 123 | 456 (9 models) | – |" in index  # a migrated record has no finish time

    # Results from before rows carried image counts get them back from the plan's test split
    # (3 test images per class × 10 digits), and the same verdicts follow.
    results = pd.read_csv(out / "tiny-a" / "results.csv")
    assert set(results.n_images) == {30} and set(results.n_classes) == {10}
    results.drop(columns=["n_images", "n_classes"]).to_csv(out / "tiny-a" / "results.csv",
                                                           index=False)
    findings = (out / "tiny-a" / "findings.csv").read_text()
    assert main(["reproduce", "tiny-a", "--report-only", "--out", str(out / "tiny-a")]) == 0
    assert pd.read_csv(out / "tiny-a" / "results.csv")[results.columns].equals(results)
    assert (out / "tiny-a" / "findings.csv").read_text() == findings
    assert "image_counts_added" in json.loads((out / "tiny-a" / "run.json").read_text())
    # Results from before issue 12 call paper 1's transferred FGSM `fgsm-black`: renamed in
    # results.csv, numbers and verdicts unchanged.
    current = (out / "tiny-a" / "results.csv").read_text()
    assert "fgsm-transfer" in current and "fgsm-black" not in current
    (out / "tiny-a" / "results.csv").write_text(current.replace("fgsm-transfer", "fgsm-black"))
    assert main(["reproduce", "tiny-a", "--report-only", "--out", str(out / "tiny-a")]) == 0
    assert (out / "tiny-a" / "results.csv").read_text() == current
    assert (out / "tiny-a" / "findings.csv").read_text() == findings
    assert "attack_names_normalised" in json.loads((out / "tiny-a" / "run.json").read_text())
    # Results from before rows carried the lineage column get it from the sidecars in
    # checkpoints/: the column the run wrote, and the same verdicts.
    results = pd.read_csv(out / "tiny-a" / "results.csv")
    assert "upstream_unfinished" in results.columns and (results.target != results.source).any()
    results.drop(columns=["upstream_unfinished"]).to_csv(out / "tiny-a" / "results.csv",
                                                         index=False)
    assert main(["reproduce", "tiny-a", "--report-only", "--out", str(out / "tiny-a")]) == 0
    assert pd.read_csv(out / "tiny-a" / "results.csv")[results.columns].equals(results)
    assert (out / "tiny-a" / "findings.csv").read_text() == findings
    assert "upstream_added" in json.loads((out / "tiny-a" / "run.json").read_text())
    # ... and a Model A whose sidecar says it was still improving is named on the rows that rest
    # on it: every FT row (its parent) and the Scratch black-box rows (crafted on it).
    sidecar = next(p for p in (out / "tiny-a" / "checkpoints").glob("a-scratch-*.json"))
    kept = sidecar.read_text()
    sidecar.write_text(json.dumps({**json.loads(kept), "plateaued": False, "best_val_acc": 0.5}))
    results.drop(columns=["upstream_unfinished"]).to_csv(out / "tiny-a" / "results.csv",
                                                         index=False)
    assert main(["reproduce", "tiny-a", "--report-only", "--out", str(out / "tiny-a")]) == 0
    lineage = pd.read_csv(out / "tiny-a" / "results.csv")
    named = lineage.upstream_unfinished.fillna("").str.startswith("A scratch")
    rests = (lineage.method == "ft") | (lineage.attack == "fgsm-transfer")
    assert named[rests & (lineage.source == lineage.source.iloc[0])].all()
    assert not named[~rests].any()
    assert "which FT rests on, was still improving" in (out / "tiny-a" / "report.md").read_text()
    sidecar.write_text(kept)
    # ... but refuses when the plan behind the results has changed.
    _register_tiny(monkeypatch, "tiny-a")
    plan = EXPERIMENTS["tiny-a"].plan
    monkeypatch.setitem(EXPERIMENTS, "tiny-a", Experiment(
        "tiny-a", "test", "paper1", lambda s, n: replace(plan(s, n), eps_255=(4,)),
        paper1.run_transfer_grid, paper1_report.build_report))
    with pytest.raises(ConfigError, match="plan changed"):
        rebuild_report("tiny-a", out / "tiny-a")
    # The index keeps such a run as it is (report untouched) and says it is an earlier plan's.
    report = (out / "tiny-a" / "report.md").read_text()
    reproduce_all(names=["tiny-a"], report_only=True, out=out)
    assert (out / "tiny-a" / "report.md").read_text() == report
    index = (out / "report.md").read_text()
    assert "**an earlier plan's run**" in index
    assert "`transferguard reproduce tiny-a --out tiny-a --overwrite`" in index


def test_help_does_not_import_torch() -> None:
    """`transferguard --help` must answer at once: no torch, torchvision or pandas behind it."""
    import subprocess
    import sys

    code = ("import sys\nfrom transferguard.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_reproduce_list_does_not_import_torch() -> None:
    """`transferguard reproduce --list` reads the registry without importing any experiment's code."""
    import subprocess
    import sys

    code = ("import sys\nfrom transferguard.cli import main\nmain(['reproduce', '--list'])\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "[]"
    listed = [line.split()[0] for line in lines[:-1]]
    assert listed == [*EXPERIMENTS, "all"]
    assert all(EXPERIMENTS[n].summary in out.stdout for n in EXPERIMENTS)

"""``transferguard audit``: end-to-end on real digits (npz and PNG folder), and every bad input.

A DTN source is trained for a few iterations on the UCI digits, a target fine-tuned from it;
both are saved with ``save_checkpoint`` and audited through ``transferguard.cli.main``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from transferguard.auditing.report import exposure
from transferguard.cli import main
from transferguard.data import load_domain
from transferguard.methods import create_method
from transferguard.models import create_model, save_checkpoint
from transferguard.training import TrainConfig, fit

FAST = ["--eps", "2/255,8/255", "--pgd-steps", "3", "--feature-steps", "4", "--candidates", "2",
        "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    mp = pytest.MonkeyPatch()
    mp.setenv("TRANSFERGUARD_CACHE", str(root / "cache"))
    torch.manual_seed(0)
    dom = load_domain("ucidigits", size=32, n_train_per_class=20)
    cfg = dict(batch_size=32, lr=0.05, progress=False, device="cpu", seed=0)
    source = fit(create_model("dtn", 10), create_method("scratch"), dom.train, dom.val,
                 TrainConfig(iterations=40, **cfg)).model
    save_checkpoint(source, root / "source", {"classes": dom.classes})
    method = create_method("ft")
    target = method.prepare(create_model("dtn", 10), source, 10)
    target = fit(target, method, dom.train, dom.val, TrainConfig(iterations=10, **cfg)).model
    save_checkpoint(target, root / "target", {"classes": dom.classes})
    x = dom.test.x[:40].permute(0, 2, 3, 1).numpy()
    np.savez(root / "digits.npz", images=x, labels=dom.test.y[:40].numpy())
    # image folder: 3 tiny PNGs per class, grey, RGBA and RGB mixed
    folder = root / "folder"
    counts = dict.fromkeys(range(10), 0)
    for img, label in zip(dom.test.x, dom.test.y.tolist(), strict=True):
        if counts[label] == 3:
            continue
        k = counts[label]
        counts[label] += 1
        rgb = Image.fromarray(img.permute(1, 2, 0).numpy()).resize((16, 16))
        pic = {0: rgb.convert("L"), 1: rgb.convert("RGBA"), 2: rgb}[k]
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        pic.save(folder / str(label) / f"{k}.png")
    yield {"root": root, "source": root / "source.safetensors",
           "target": root / "target.safetensors", "npz": root / "digits.npz", "folder": folder,
           "target_model": target}
    mp.undo()


def _suite_names(shared_labels: bool) -> list[str]:
    """The registry's transfer-suite attacks an audit runs (the noise control aside)."""
    from transferguard.attacks import transfer_suite

    return [f"{e.name}-transfer" for e in transfer_suite(shared_labels) if not e.control]


def _run(args, capsys) -> tuple[int, str, str]:
    code = main(["audit", *[str(a) for a in args]])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_audit_npz_end_to_end(env, tmp_path, capsys):
    """Structure and internal consistency only: how well the briefly trained models classify,
    and how strong each attack is on them, varies with the CPU's kernels and is not asserted."""
    out = tmp_path / "npz"
    code, stdout, err = _run(["--source", f"dtn:{env['source']}", "--target", f"dtn:{env['target']}",
                              "--data", env["npz"], "--out", out, *FAST], capsys)
    assert code == 0, err
    assert "exposure" in stdout and "results.csv" in stdout
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns[:9]) == ["experiment", "task", "method", "arch", "seed", "attack",
                                    "eps", "metric", "value"] and "model" in df.columns
    n_images, eps_values = 40, [2 / 255, 8 / 255]
    attacks = list(dict.fromkeys(["noise", "fgsm-transfer", "pgd-transfer", "feature-transfer",
                                  "fgsm-white", "pgd-white", *_suite_names(shared_labels=True)]))
    tgt = df[df.method == "target"]
    assert set(tgt.attack) == {"none", *attacks}
    assert set(tgt[tgt.attack == "none"].metric) >= {
        "clean_acc", "grad_norm_mean", "grad_norm_median", "grad_norm_p90", "weight_distance",
        "feature_distance"}
    # clean accuracies (source and target) are k/40 fractions
    for method in ("source", "target"):
        accs = df[(df.method == method) & (df.metric == "clean_acc")].value
        assert len(accs) == 1
        assert 0 <= accs.iloc[0] <= 1
        # (float32 means: a k/40 fraction to float32 precision)
        assert accs.iloc[0] * n_images == pytest.approx(round(accs.iloc[0] * n_images), abs=1e-4)
    acc = float(tgt[tgt.metric == "clean_acc"].value.iloc[0])
    n_clean = round(acc * n_images)
    # one ASR, adv_acc and adv_acc_cond per attack and ε, consistent with n_clean
    per = {m: tgt[tgt.metric == m].set_index(["attack", "eps"])["value"].sort_index()
           for m in ("asr", "adv_acc", "adv_acc_cond")}
    for m, values in per.items():
        assert len(values) == len(attacks) * len(eps_values), m
        assert sorted({a for a, _ in values.index}) == sorted(attacks)
        assert np.allclose(sorted({e for _, e in values.index}), eps_values)
    asr = per["asr"]
    if n_clean == 0:   # nothing correct: no success rate exists
        assert asr.isna().all() and per["adv_acc_cond"].isna().all()
    else:
        assert asr.between(0, 1).all()
        fooled = asr.to_numpy() * n_clean
        assert np.allclose(fooled, np.round(fooled), rtol=0, atol=1e-6)   # a count of n_clean
        assert np.allclose(per["adv_acc_cond"].to_numpy(), 1 - asr.to_numpy())
        assert np.allclose(per["adv_acc"].to_numpy(), (n_clean - fooled) / n_images)
    assert (per["adv_acc"] <= acc + 1e-6).all()   # correct under attack ⊆ correct clean
    # γ = (a_black − a_white) / a_white from the conditional accuracies, per transfer attack
    gamma = tgt[tgt.metric == "gamma"].set_index(["attack", "eps"])["value"]
    assert len(gamma) == 2 * 2
    cond = per["adv_acc_cond"]
    for (black, eps), g in gamma.items():
        white = {"fgsm-transfer": "fgsm-white", "pgd-transfer": "pgd-white"}[black]
        a_b, a_w = cond[(black, eps)], cond[(white, eps)]
        assert (np.isnan(g) and (np.isnan(a_w) or a_w == 0)) or g == pytest.approx((a_b - a_w) / a_w)
    norms = tgt[tgt.metric.str.startswith("grad_norm")].set_index("metric")["value"]
    assert (norms >= 0).all() and norms["grad_norm_p90"] >= norms["grad_norm_median"]
    assert tgt[tgt.metric == "weight_distance"].value.iloc[0] > 0   # fine-tuning moved weights
    assert tgt[tgt.metric == "feature_distance"].value.iloc[0] >= 0
    # the Markdown verdict (line 3) states the level recomputed from the table, at ε* = 8/255
    level = exposure(df, "target", 8 / 255)[0]
    md = (out / "report.md").read_text()
    verdict = md.splitlines()[2]
    assert verdict.startswith(f"**{level} exposure**: ") and "ε=8/255" in verdict
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and (out / "asr-target.png").is_file()


def test_audit_folder_grey_rgba_with_retrain_reference(env, tmp_path, capsys):
    out = tmp_path / "folder"
    code, _, err = _run(["--source", f"dtn:{env['source']}", "--target", f"dtn:{env['target']}",
                         "--data", env["folder"], "--out", out, "--train-reference", "retrain",
                         "--reference-iterations", "4", *FAST], capsys)
    assert code == 0, err
    df = pd.read_csv(out / "results.csv")
    assert set(df.method) == {"source", "target", "reference:retrain"}
    ref = df[(df.method == "reference:retrain") & (df.metric == "asr")]
    assert set(ref.attack) == {"noise", "fgsm-transfer", "pgd-transfer", "feature-transfer",
                               "fgsm-white", "pgd-white", *_suite_names(shared_labels=True)}
    assert (out / "reference-retrain.safetensors").is_file()
    md = (out / "report.md").read_text()
    assert "retrain" in md.splitlines()[2]  # the verdict names what the reference would change
    assert "30% per class (10 images) for the audit" in md
    assert (out / "asr-models.png").is_file()


def test_python_api_source_with_other_classes(env, tmp_path):
    """A 7-class source (plain safetensors, no sidecar) and a .pt state-dict target."""
    from transferguard.auditing import audit

    torch.manual_seed(1)
    save_file(create_model("dtn", 7).state_dict(), tmp_path / "src7.safetensors")
    torch.save(env["target_model"].state_dict(), tmp_path / "target.pt")
    df = audit(f"dtn:{tmp_path / 'src7.safetensors'}", f"dtn:{tmp_path / 'target.pt'}",
               str(env["npz"]), eps=[4 / 255], verdict_eps=4 / 255, limit=12, pgd_steps=2,
               feature_steps=3, candidates=2, device="cpu", progress=False)
    assert set(df.attack) == {"none", "noise", "feature-transfer", "fgsm-white", "pgd-white",
                              *_suite_names(shared_labels=False)}
    assert "mi-di-ti-fgsm-transfer" not in set(df.attack)   # it needs the source's labels
    assert (df.metric == "clean_acc").sum() == 1  # no source accuracy: its labels differ
    assert any("skipped" in n for n in df.attrs["notes"])
    # noise, fgsm-white, pgd-white and the label-free suite, each at the one ε
    assert len(df[(df.metric == "asr")]) == 3 + len(_suite_names(shared_labels=False))


# ------------------------------------------------------------------------ bad input
def _one_error_line(code: int, err: str) -> str:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("transferguard: error: "), err
    return lines[0]


def _tiny_png_folder(path: Path, classes: int, bad: bool = False) -> Path:
    for c in range(classes):
        (path / f"c{c}").mkdir(parents=True)
        Image.new("RGB", (8, 8), (40 * c, 0, 0)).save(path / f"c{c}" / "a.png")
    if bad:
        (path / "c0" / "broken.png").write_bytes(b"\x89PNG garbage, not an image" * 3)
    return path


def _bad_weights(kind: str, env, tmp_path: Path) -> Path:
    state = env["target_model"].state_dict()
    if kind == "nan":
        state = {k: v.clone() for k, v in state.items()}
        state["stages.0.0.weight"][0, 0, 0, 0] = float("nan")
        save_checkpoint(_with_state(state), tmp_path / "nan")  # a transferguard checkpoint
        return tmp_path / "nan.safetensors"
    state = {k: v.clone() for k, v in state.items()}
    state["head.bias"][3] = float("inf")
    save_file(state, tmp_path / "inf.safetensors")
    return tmp_path / "inf.safetensors"


def _with_state(state):
    model = create_model("dtn", 10)
    model.load_state_dict(state)
    return model


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("case", [
    "unknown-arch", "weights-misfit", "wrong-arch-checkpoint", "target-without-weights",
    "source-without-public-weights", "missing-weights", "class-mismatch", "empty-folder",
    "missing-folder", "folder-without-images", "garbage-png", "nan-weights", "inf-weights",
    "eps-above-1", "eps-negative", "npz-without-labels", "corrupt-npz", "wrong-input-size"])
def test_bad_input_one_line(case, env, tmp_path, capsys):
    src, tgt, data = f"dtn:{env['source']}", f"dtn:{env['target']}", str(env["npz"])
    extra: list[str] = []
    expect = ""
    if case == "unknown-arch":
        tgt, expect = f"nosuchnet:{env['target']}", "unknown architecture"
    elif case == "weights-misfit":
        save_file({"head.weight": torch.zeros(10, 512), "head.bias": torch.zeros(10),
                   "stages.0.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "misfit.safetensors")
        tgt, expect = f"dtn:{tmp_path / 'misfit.safetensors'}", "do not fit"
    elif case == "wrong-arch-checkpoint":
        tgt, expect = f"wrn-16-4:{env['target']}", "is a 'dtn' checkpoint"
    elif case == "target-without-weights":
        tgt, expect = "dtn", "ARCH:WEIGHTS"
    elif case == "source-without-public-weights":
        src, expect = "dtn", "no public pre-trained weights"
    elif case == "missing-weights":
        tgt, expect = f"dtn:{tmp_path / 'nope.safetensors'}", "not found"
    elif case == "class-mismatch":
        data, expect = str(_tiny_png_folder(tmp_path / "three", 3)), "10 classes but the data has 3"
    elif case == "empty-folder":
        (tmp_path / "empty").mkdir()
        data, expect = str(tmp_path / "empty"), "holds no images"
    elif case == "missing-folder":
        data, expect = str(tmp_path / "no-such-folder"), "not found"
    elif case == "folder-without-images":
        (tmp_path / "txt" / "a").mkdir(parents=True)
        (tmp_path / "txt" / "a" / "notes.txt").write_text("hello")
        data, expect = str(tmp_path / "txt"), "holds no images"
    elif case == "garbage-png":
        data, expect = str(_tiny_png_folder(tmp_path / "bad", 10, bad=True)), "broken.png"
    elif case in ("nan-weights", "inf-weights"):
        tgt, expect = f"dtn:{_bad_weights(case[:3], env, tmp_path)}", "NaN or infinite"
    elif case == "eps-above-1":
        extra, expect = ["--eps=2"], "outside [0, 1]"
    elif case == "eps-negative":
        extra, expect = ["--eps=-1/255"], "outside [0, 1]"
    elif case == "npz-without-labels":
        np.savez(tmp_path / "x.npz", images=np.zeros((4, 8, 8), np.uint8))
        data, expect = str(tmp_path / "x.npz"), "'labels'"
    elif case == "corrupt-npz":
        (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 truncated zip")
        data, expect = str(tmp_path / "c.npz"), "cannot read"
    elif case == "wrong-input-size":
        extra, expect = ["--input-size", "16"], "cannot classify 16×16 images"
    code, _, err = _run(["--source", src, "--target", tgt, "--data", data,
                         "--out", tmp_path / "out", *FAST, *extra], capsys)
    line = _one_error_line(code, err)
    assert expect in line, line


def test_code_executing_pickle_is_refused(env, tmp_path, capsys):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": _Evil(marker)}, tmp_path / "evil.pt")
    code, _, err = _run(["--source", f"dtn:{env['source']}", "--target",
                         f"dtn:{tmp_path / 'evil.pt'}", "--data", env["npz"],
                         "--out", tmp_path / "out", *FAST], capsys)
    line = _one_error_line(code, err)
    assert "refused" in line
    assert not marker.exists()

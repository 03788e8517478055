"""``transferguard audit``: the command-line face of :func:`transferguard.auditing.audit`."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from ..errors import ConfigError


def _floats(text: str | None, name: str) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{name} {text!r}: give comma-separated numbers, e.g. "
                          "0.485,0.456,0.406") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{name} {text!r}: give comma-separated finite numbers")
    return values


def cmd_audit(args: argparse.Namespace) -> int:
    """Run the audit, print a short summary and where the files are."""
    from .._eps import parse_eps
    from .._io import output_folder
    from .._modelspec import parse_model_spec
    from .api import audit
    from .report import verdict_line

    eps = parse_eps(args.eps)
    (verdict_eps,) = parse_eps(args.verdict_eps)
    out = output_folder(args.out, "runs/audit", args.overwrite)
    for role, spec in (("target", args.target), ("source", args.source)):
        parse_model_spec(spec, role)  # a missing file is one line before torch is imported
    mean, std = _floats(args.mean, "--mean"), _floats(args.std, "--std")
    if (mean is None) != (std is None):
        raise ConfigError("give --mean and --std together")
    df = audit(args.source, args.target, args.data, eps=eps, out=out, overwrite=args.overwrite,
               verdict_eps=verdict_eps,
               input_size=args.input_size,
               normalization=(mean, std) if mean is not None and std is not None else None,
               limit=args.limit, train_reference=args.train_reference,
               reference_iterations=args.reference_iterations, budget=args.budget,
               pgd_steps=args.pgd_steps, feature_steps=args.feature_steps,
               candidates=args.candidates,
               device=args.device, progress=not args.quiet, batch_size=args.batch_size,
               data_root=args.data_root, seed=args.seed)
    print(verdict_line(df).replace("**", ""))
    for note in df.attrs["notes"]:  # how many images were audited (and any held out), warnings
        if note.startswith(("Audit images", "**Warning**")):
            print(f"  {note.replace('**', '')}")
    clean = df[(df.metric == "clean_acc") & (df.method != "source")]
    for _, row in clean.iterrows():
        print(f"  {row['method']}: clean accuracy {100 * row['value']:.1f}%")
    print(f"{len(df)} result rows → {out / 'results.csv'}")
    print(f"report → {out / 'report.md'} and {out / 'report.html'}")
    return 0


def add_audit_parser(sub: argparse._SubParsersAction,
                     common: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """Register ``audit`` on the main CLI's subparsers (``common`` adds --device/--data-root/--quiet)."""
    p = sub.add_parser(
        "audit", help="how exposed is a fine-tuned model to attacks crafted on its public source?",
        description="Attack the TARGET with examples crafted on the public SOURCE model (the "
                    "transfer suite: FGSM/PGD/MI-DI-TI-FGSM when labels are shared, and the "
                    "feature-level penultimate, layer, FIA and ILA attacks), white-box and with "
                    "a noise control; write results.csv, report.md and report.html to --out.")
    p.add_argument("--source", required=True, metavar="PATH|ARCH[:WEIGHTS]",
                   help="public model the attacker holds; ARCH alone = its public pre-trained "
                        "weights when present offline")
    p.add_argument("--target", required=True, metavar="PATH|ARCH:WEIGHTS",
                   help="your fine-tuned model: a transferguard checkpoint (PATH), or "
                        "ARCH:WEIGHTS for a plain .safetensors or PyTorch state dict")
    p.add_argument("--data", required=True,
                   help="image folder (one subfolder per class), .npz (images, labels) or a "
                        "registered domain (its test split)")
    p.add_argument("--eps", default="1/255,2/255,4/255,8/255,16/255",
                   help="L∞ budgets in pixel units, e.g. 4/255,8/255")
    p.add_argument("--verdict-eps", default="8/255",
                   help="the ε (pixel units) at which the exposure verdict is read; audited even "
                        "when --eps does not list it")
    p.add_argument("--out", default=None,
                   help="output folder (default: runs/audit, or runs/audit-N if that holds "
                        "results)")
    p.add_argument("--input-size", type=int, default=None,
                   help="image side in px (default: the target checkpoint's, else the "
                        "architecture's: 32 for dtn/wrn, 224 for ImageNet models)")
    p.add_argument("--mean", default=None, help="input normalisation mean, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", default=None, help="input normalisation std, e.g. 0.229,0.224,0.225")
    p.add_argument("--limit", type=int, default=None, help="audit a random subset of N images")
    p.add_argument("--train-reference", default=None, choices=["retrain", "renofeation"],
                   help="also train this reference on the same data and audit it alongside")
    p.add_argument("--reference-iterations", type=int, default=1000,
                   help="SGD steps of the --train-reference model")
    p.add_argument("--budget", default="fast", choices=["fast", "thorough"],
                   help="attack effort: fast = 10 iterations per attack and 4 candidate neurons "
                        "(1,000 digit-sized images at 3 ε in a few minutes on 2 CPU cores); "
                        "thorough = 40 iterations and 32 candidate neurons")
    p.add_argument("--pgd-steps", type=int, default=None,
                   help="iterations of every iterative attack (overrides --budget)")
    p.add_argument("--feature-steps", type=int, default=None,
                   help="iterations of the penultimate-feature attack (overrides --budget)")
    p.add_argument("--candidates", type=int, default=None,
                   help="feature attack: candidate neurons tried per image, best kept "
                        "(overrides --budget)")
    p.add_argument("--batch-size", type=int, default=128, help="images per crafting batch")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of --limit's subset, random starts, noise and data splits")
    common(p)
    p.set_defaults(func=cmd_audit)
    return p

"""``transferguard`` command line: thin parsing over the library.

Every user error (bad name, bad file, bad ε) ends as one line on stderr and exit code 2; results
go to files (CSV, Markdown, HTML, PNG) and a short summary to stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from ._allocator import tune_malloc
from .errors import ConfigError, TransferGuardError

log = logging.getLogger("transferguard")


def parse_eps(text: str) -> list[float]:
    """'1/255,8/255,0.1' → [0.0039…, 0.0313…, 0.1]; each ε must lie in [0, 1] (pixel units)."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = float(Fraction(part))
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"cannot read ε {part!r}: write it in pixel units, e.g. 8/255 or 0.03") from None
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"ε {part} is outside [0, 1]: ε is in pixel units (images are in [0, 1])")
        out.append(v)
    if not out:
        raise ConfigError("no ε given")
    return out


def output_folder(given: str | None, default: str, overwrite: bool,
                  marker: str = "results.csv") -> Path:
    """Where a command writes its results, never over finished ones without ``--overwrite``.

    An explicit ``--out`` that already holds ``marker`` is refused unless ``overwrite``; with no
    ``--out`` the first free folder of ``default``, ``default-2``, ``default-3`` … is used.
    """
    if given is not None:
        out = Path(given).expanduser()
        if (out / marker).exists() and not overwrite:
            raise ConfigError(f"{out} already holds results ({marker}); pass --overwrite to "
                              "replace them, or choose another --out")
        return out
    out, n = Path(default), 1
    while (out / marker).exists():
        n += 1
        out = Path(f"{default}-{n}")
    return out


# ---------------------------------------------------------------------------- commands
def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import describe_domains

    rows = describe_domains(root=args.root)
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        status = "available" if r.get("available") else f"unavailable ({r.get('reason', '')})"
        print(f"{r['name']:<{width}}  {status}")
        print(f"{'':<{width}}  {r.get('description', '')}")
        print(f"{'':<{width}}  source: {r.get('source', '')}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .experiments import EXPERIMENTS, reproduce, reproduce_all
    from .experiments.reproduce import rebuild_report, run_folder

    if args.list or not args.name:
        width = max(len(n) for n in EXPERIMENTS)
        for name, exp in EXPERIMENTS.items():
            print(f"{name:<{width}}  {exp.summary}")
        print(f"{'all':<{width}}  every experiment above, one index report")
        return 0
    if args.report_only:
        if args.name == "all":
            df, out = reproduce_all(scale=args.scale, out=args.out, report_only=True)
        else:
            df, out = rebuild_report(args.name, run_folder(args.name, args.scale, args.out))
        print(f"report rebuilt from {len(df)} result rows → {out / 'report.md'}")
        return 0
    from .utils import resolve_device

    resolve_device(args.device)  # a missing GPU is one line now, not after the data loaded
    kwargs = dict(scale=args.scale, seeds=args.seeds, out=args.out, store=args.store,
                  device=args.device, progress=not args.quiet, data_root=args.data_root,
                  backend=args.backend, workers=args.workers, address=args.address,
                  overwrite=args.overwrite)
    if args.name == "all":
        df, out = reproduce_all(**kwargs)
    else:
        df, out = reproduce(args.name, **kwargs)
    print(f"{len(df)} result rows → {out / 'results.csv'}")
    print(f"report → {out / 'report.md'} and {out / 'report.html'}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .data import load_domain
    from .methods import create_method
    from .models import create_model, load_model, save_checkpoint
    from .training import TrainConfig, evaluate, fit
    from .utils import resolve_device, seed_everything

    out = Path(args.out).expanduser()
    stem = out.with_suffix("") if out.suffix in (".safetensors", ".json") else out
    existing = [f for f in (stem.with_name(stem.name + ".safetensors"),
                            stem.with_name(stem.name + ".json")) if f.exists()]
    if existing and not args.overwrite:
        raise ConfigError(f"{existing[0]} already exists; pass --overwrite to replace it, or "
                          "choose another --out")
    device = resolve_device(args.device)
    method = create_method(args.method, **_method_options(args))
    dom = load_domain(args.domain, size=args.size, n_train_per_class=args.n_per_class,
                      seed=args.split_seed, root=args.data_root)
    source = None
    if args.source:
        source = load_model(args.source, role="source", require_weights=False).model
    seed_everything(args.seed)
    model = create_model(args.arch, dom.num_classes, pretrained=args.pretrained)
    model = method.prepare(model, source, dom.num_classes)
    cfg = TrainConfig(epochs=None if args.iterations else args.epochs, iterations=args.iterations,
                      batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                      momentum=args.momentum, schedule=args.schedule, patience=args.patience,
                      seed=args.seed, device=str(device), progress=not args.quiet)
    teacher = source if getattr(method, "needs_teacher", False) else None
    result = fit(model, method, dom.train, dom.val, cfg, teacher=teacher)
    test_acc = evaluate(result.model, dom.test, batch_size=256)
    meta = {"domain": args.domain, "classes": dom.classes, "method": args.method,
            "parent": str(args.source) if args.source else None, "seed": args.seed,
            "input_size": args.size,
            "metrics": {"best_val_acc": result.best_val_acc, "test_acc": test_acc}}
    path = save_checkpoint(result.model.cpu(), stem, meta)
    val = "n/a" if result.best_val_acc is None else f"{100 * result.best_val_acc:.2f}%"
    print(f"val acc {val}  test acc {100 * test_acc:.2f}%  → {path}")
    return 0


def _method_options(args: argparse.Namespace) -> dict[str, float]:
    options = {}
    if args.dropout is not None:
        options["dropout"] = args.dropout
    if args.lambda_feat is not None:
        options["lambda_feat"] = args.lambda_feat
    return options


def cmd_attack(args: argparse.Namespace) -> int:
    import pandas as pd
    import torch

    from . import attacks
    from ._io import atomic_write
    from .data import load_domain
    from .evaluation import attack_metrics
    from .models import load_model
    from .utils import resolve_device

    eps_list = parse_eps(args.eps)
    out = output_folder(args.out, "runs/attack", args.overwrite)
    device = resolve_device(args.device)
    target = load_model(args.target, role="target", require_weights=True, device=device).model
    crafter = target
    if args.source:
        crafter = load_model(args.source, role="source", require_weights=False,
                             device=device).model
    dom = load_domain(args.domain, size=args.size, root=args.data_root)
    if dom.num_classes != target.num_classes:
        raise ConfigError(f"{args.domain} has {dom.num_classes} classes, the target model "
                          f"{target.num_classes}")
    x, y = dom.test.images(), dom.test.y
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    gen = torch.Generator().manual_seed(args.seed)
    clean = attacks.predict(target, x.to(device)).cpu()
    rows = [{"attack": "none", "eps": 0.0, "metric": "clean_acc",
             "value": float((clean == y).float().mean())}]
    mode = "transfer" if args.source else "white-box"
    for eps in eps_list:
        xs, ys = [], []
        for i in range(0, len(y), args.batch_size):
            xb, yb = x[i:i + args.batch_size].to(device), y[i:i + args.batch_size].to(device)
            if args.attack == "fgsm":
                adv = attacks.fgsm(crafter, xb, yb, eps)
            elif args.attack == "pgd":
                adv = attacks.pgd(crafter, xb, yb, eps, steps=args.steps, generator=gen)
            elif args.attack == "feature":
                adv = attacks.feature_attack(crafter, xb, eps, steps=args.steps, generator=gen)
            else:
                adv = attacks.uniform_noise(xb, eps, generator=gen)
            xs.append(adv.cpu())
            ys.append(yb.cpu())
        adv_pred = attacks.predict(target, torch.cat(xs).to(device)).cpu()
        name = f"{args.attack}-{mode}"
        rows += [{"attack": name, "eps": eps, "metric": k, "value": v}
                 for k, v in attack_metrics(clean, adv_pred, y).items()]
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "results.csv", lambda tmp: df.to_csv(tmp, index=False))
    print(df.pivot_table(index="eps", columns="metric", values="value").to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"→ {out / 'results.csv'}")
    return 0


# ------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="transferguard", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1 …")
        sp.add_argument("--data-root", default=None, help="root folder of datasets on disk")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        sp.add_argument("--overwrite", action="store_true",
                        help="replace finished results at --out (refused otherwise)")

    d = sub.add_parser("datasets", help="list every domain, its size and where its data comes from")
    d.add_argument("--root", default=None)
    d.set_defaults(func=cmd_datasets)

    r = sub.add_parser("reproduce", help="regenerate a figure or table of the papers")
    r.add_argument("name", nargs="?", help="experiment name (see --list)")
    r.add_argument("--list", action="store_true", help="list the registered experiments")
    r.add_argument("--scale", default="offline", choices=["offline", "paper"])
    r.add_argument("--seeds", type=int, default=None, help="number of seeds (default per experiment)")
    r.add_argument("--out", default=None, help="run folder (default runs/NAME-SCALE)")
    r.add_argument("--store", default=None, help="model/evaluation cache (default ~/.cache/transferguard/store)")
    r.add_argument("--backend", default="local", choices=["serial", "local", "ray"],
                   help="where training units run: this process, local processes (default), or Ray")
    r.add_argument("--workers", type=int, default=None,
                   help="parallel training units (default: half the cores; 1 runs in-process)")
    r.add_argument("--address", default=None, help="address of an existing Ray cluster (--backend ray)")
    r.add_argument("--report-only", action="store_true",
                   help="rebuild the report(s) in --out from results.csv, computing nothing")
    common(r)
    r.set_defaults(func=cmd_reproduce)

    t = sub.add_parser("train", help="train one model with a transfer method")
    t.add_argument("--domain", required=True)
    t.add_argument("--arch", default="dtn")
    t.add_argument("--method", default="scratch")
    t.add_argument("--source", default=None, metavar="PATH|ARCH[:WEIGHTS]",
                   help="model to transfer from: a checkpoint (.safetensors + .json, e.g. from "
                        "runs/NAME/checkpoints/), ARCH:WEIGHTS for a bare state dict, or ARCH "
                        "for its public pre-trained weights")
    t.add_argument("--pretrained", default=None, help="public pre-trained weights file for --arch")
    t.add_argument("--out", required=True, help="checkpoint path (writes .safetensors and .json)")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--iterations", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=0.01)
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--schedule", default="constant", choices=["constant", "cosine"])
    t.add_argument("--patience", type=int, default=None)
    t.add_argument("--dropout", type=float, default=None, help="spatial dropout after each stage")
    t.add_argument("--lambda-feat", type=float, default=None)
    t.add_argument("--n-per-class", type=int, default=None)
    t.add_argument("--size", type=int, default=32)
    t.add_argument("--split-seed", type=int, default=0)
    t.add_argument("--seed", type=int, default=0)
    common(t)
    t.set_defaults(func=cmd_train)

    a = sub.add_parser("attack", help="attack a model white-box, or by transfer from --source")
    a.add_argument("--target", required=True, metavar="PATH|ARCH:WEIGHTS",
                   help="the attacked model: a checkpoint, or ARCH:WEIGHTS for a bare state dict")
    a.add_argument("--source", default=None, metavar="PATH|ARCH[:WEIGHTS]",
                   help="craft on this model instead (black-box transfer)")
    a.add_argument("--domain", required=True, help="test data (the target's domain)")
    a.add_argument("--attack", default="fgsm", choices=["fgsm", "pgd", "feature", "noise"])
    a.add_argument("--eps", default="1/255,2/255,4/255,8/255,16/255,32/255")
    a.add_argument("--steps", type=int, default=10)
    a.add_argument("--batch-size", type=int, default=256)
    a.add_argument("--limit", type=int, default=None, help="attack only the first N test images")
    a.add_argument("--size", type=int, default=32)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", default=None,
                   help="results folder (default: runs/attack, or runs/attack-N if that holds "
                        "results)")
    common(a)
    a.set_defaults(func=cmd_attack)

    from .auditing.cli import add_audit_parser

    add_audit_parser(sub, common)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    tune_malloc()  # large tensors from the heap, not fresh mmaps: see transferguard._allocator
    try:
        return int(args.func(args) or 0)
    except TransferGuardError as exc:
        print(f"transferguard: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder, a vanished file: say which, briefly
        where = f": {exc.filename}" if exc.filename else ""
        print(f"transferguard: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("transferguard: interrupted; finished work is kept and will be reused", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``transferguard`` command line: thin parsing over the library.

Every user error (bad name, bad file, bad ε) ends as one line on stderr and exit code 2; results
go to files (CSV, Markdown, HTML, PNG) and a short summary to stdout.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ._allocator import tune_malloc
from ._eps import parse_eps
from ._io import output_folder
from ._modelspec import parse_model_spec
from ._names import unknown_name
from .errors import ConfigError, TransferGuardError

log = logging.getLogger("transferguard")


# ---------------------------------------------------------------------------- commands
def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import describe_domains

    if args.download:
        from .data import load_domain

        dom = load_domain(args.download, root=args.root, download=True)
        print(f"{args.download}: {len(dom.train) + len(dom.val)} training and {len(dom.test)} "
              "test images ready")
        return 0
    rows = describe_domains(root=args.root)
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        reason = cli_message(Exception(r.get("reason", "")))
        status = "available" if r.get("available") else f"unavailable ({reason})"
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
    if args.plan:  # a cost estimate only: nothing trained, no run folder, no store created
        from .experiments.costplan import cost_plan_text

        print(cost_plan_text(args.name, scale=args.scale, seeds=args.seeds,
                             first_seed=args.first_seed, store=args.store, profile=args.profile,
                             gpus=args.gpus, device=args.device, precision=args.precision))
        return 0
    if args.report_only:
        if args.name == "all":
            df, out = reproduce_all(scale=args.scale, out=args.out, report_only=True)
        else:
            df, out = rebuild_report(args.name, run_folder(args.name, args.scale, args.out))
        print(f"report rebuilt from {len(df)} result rows → {out / 'report.md'}")
        return 0
    from .experiments.registry import get_experiment

    if args.name != "all":
        get_experiment(args.name)  # an unknown name is one line before torch is imported
    from .utils import resolve_device

    resolve_device(args.device)  # a missing GPU is one line now, not after the data loaded
    kwargs = dict(scale=args.scale, seeds=args.seeds, out=args.out, store=args.store,
                  device=args.device, progress=not args.quiet, data_root=args.data_root,
                  backend=args.backend, workers=args.workers, address=args.address,
                  overwrite=args.overwrite, first_seed=args.first_seed)
    kwargs.update(precision=args.precision, gpus_per_unit=args.gpus_per_unit)
    if args.name == "all":
        df, out = reproduce_all(**kwargs)
    else:
        df, out = reproduce(args.name, **kwargs)
    print(f"{len(df)} result rows → {out / 'results.csv'}")
    print(f"report → {out / 'report.md'} and {out / 'report.html'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Print how many of the claims decided in both runs got the same verdict."""
    from .experiments.compare import compare

    print(compare(args.run_a, args.run_b).summary())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser()
    stem = out.with_suffix("") if out.suffix in (".safetensors", ".json") else out
    existing = [f for f in (stem.with_name(stem.name + ".safetensors"),
                            stem.with_name(stem.name + ".json")) if f.exists()]
    if existing and not args.overwrite:
        raise ConfigError(f"{existing[0]} already exists; pass --overwrite to replace it, or "
                          "choose another --out")
    if args.source:
        parse_model_spec(args.source, "source")  # a missing file is one line before torch loads
    _check_names(domain=args.domain, arch=args.arch, method=args.method)
    from .data import load_domain
    from .methods import create_method
    from .models import load_model, save_checkpoint
    from .training import evaluate, resolve_precision, train_one
    from .utils import resolve_device

    device = resolve_device(args.device)
    method = create_method(args.method, **_method_options(args))
    dom = load_domain(args.domain, size=args.size, n_train_per_class=args.n_per_class,
                      seed=args.split_seed, root=args.data_root)
    source = None
    if args.source:
        source = load_model(args.source, role="source", require_weights=False).model
    precision = resolve_precision(args.precision, device)
    settings = {"epochs": None if args.iterations else args.epochs, "iterations": args.iterations,
                "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
                "momentum": args.momentum, "schedule": args.schedule, "patience": args.patience,
                "device": str(device), "progress": not args.quiet, "precision": precision}
    result = train_one(args.arch, method, dom.train, dom.val, settings, seed=args.seed,
                       num_classes=dom.num_classes, parent=source, pretrained=args.pretrained)
    test_acc = evaluate(result.model, dom.test, batch_size=256)
    meta = {"domain": args.domain, "classes": dom.classes, "method": args.method,
            "parent": str(args.source) if args.source else None, "seed": args.seed,
            "input_size": args.size, "precision": precision,
            "metrics": {"best_val_acc": result.best_val_acc, "test_acc": test_acc}}
    path = save_checkpoint(result.model.cpu(), stem, meta)
    val = "n/a" if result.best_val_acc is None else f"{100 * result.best_val_acc:.2f}%"
    print(f"val acc {val}  test acc {100 * test_acc:.2f}%  → {path}")
    return 0


def _check_names(*, domain: str | None = None, arch: str | None = None,
                 method: str | None = None) -> None:
    """Reject an unknown domain, architecture or method name before torch is imported (the
    registries list their names without it): a typo costs a tenth of a second."""
    if domain is not None:
        from .data.registry import resolve_spec

        resolve_spec(domain)
    if arch is not None:
        from .models.registry import arch_info

        arch_info(arch)
    if method is not None:
        from .methods.registry import method_key

        method_key(method)


def _method_options(args: argparse.Namespace) -> dict[str, float]:
    options = {}
    if args.dropout is not None:
        options["dropout"] = args.dropout
    if args.lambda_feat is not None:
        options["lambda_feat"] = args.lambda_feat
    return options


def cmd_attack(args: argparse.Namespace) -> int:
    eps_list = parse_eps(args.eps)  # cheap checks first: their errors need no torch import
    out = output_folder(args.out, "runs/attack", args.overwrite)
    parse_model_spec(args.target, "target")
    if args.source:
        parse_model_spec(args.source, "source")
    _check_names(domain=args.domain)
    import torch

    from . import attacks
    from .data import load_domain
    from .evaluation import attack_metrics
    from .models import load_model
    from .results import CLEAN, Metric, Threat, attack_name, results_frame, write_results
    from .utils import resolve_device

    attack = _attack_entry(args.attack)
    device = resolve_device(args.device)
    target = load_model(args.target, role="target", require_weights=True, device=device)
    crafter = target
    if args.source:
        crafter = load_model(args.source, role="source", require_weights=False, device=device)
    dom = load_domain(args.domain, size=args.size, root=args.data_root)
    if dom.num_classes != target.model.num_classes:
        raise ConfigError(f"{args.domain} has {dom.num_classes} classes, the target model "
                          f"{target.model.num_classes}")
    x, y = dom.test.images(), dom.test.y
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    gen = torch.Generator().manual_seed(args.seed)
    options = {k: v for k, v in (("steps", args.steps), ("generator", gen))
               if _accepts(attack.fn, k)}
    clean = attacks.predict(target.model, x.to(device)).cpu()
    kind = "transfer" if args.source else "white-box"
    name = attack_name(args.attack, Threat.TRANSFER if args.source else Threat.WHITE)
    base = {"experiment": "attack", "task": args.domain, "method": target.sidecar.get("method"),
            "arch": target.arch, "seed": args.seed, "kind": kind, "crafted_on": crafter.spec,
            "target": target.spec, "n_images": len(y)}
    rows = [{**base, "attack": CLEAN, "eps": 0.0, "metric": Metric.CLEAN_ACC.value,
             "value": float((clean == y).float().mean())}]
    for eps in eps_list:
        adv = attacks.craft_in_batches(
            lambda xb, yb, e=eps: attack(crafter.model, xb, yb, eps=e, **options),
            x, y, batch_size=args.batch_size, progress=not args.quiet, device=device,
            desc=f"{name} ε={eps_label(eps)}")
        adv_pred = attacks.predict(target.model, adv.to(device)).cpu()
        rows += [{**base, "attack": name, "eps": eps, "metric": k, "value": v}
                 for k, v in attack_metrics(clean, adv_pred, y).items()]
    df = results_frame(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_results(df, out / "results.csv")
    print(attack_table(df))
    print(f"{len(y)} test images of {args.domain}; {kind} {args.attack} crafted on "
          f"{crafter.spec} → {out / 'results.csv'}")
    return 0


def _attack_entry(name: str):  # noqa: ANN202 - an attacks.AttackEntry
    """The registry's entry for ``name`` (the whole transfer suite, noise control included)."""
    from .attacks import SUITE

    if name not in SUITE:
        raise ConfigError(unknown_name("attack", name, SUITE))
    return SUITE[name]


def _accepts(fn: object, option: str) -> bool:
    import inspect

    params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    return any(p.name == option or p.kind is p.VAR_KEYWORD for p in params)


def eps_label(eps: float) -> str:
    """ε in the pixel units a person reads: ``8/255`` when it is a whole number of 255ths."""
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{eps:g}"


def attack_table(df) -> str:  # noqa: ANN001 - a pandas DataFrame (pandas is imported lazily)
    """Rows = attack × ε (in n/255), columns = metrics, values in %; no empty cells."""
    table = df.assign(eps=[eps_label(e) for e in df.eps]).pivot_table(
        index=["attack", "eps"], columns="metric", values="value", sort=False)
    table = table.dropna(axis=1, how="all")
    return table.map(lambda v: "" if v != v else f"{100 * v:.1f} %").to_string()  # NaN → blank


# ------------------------------------------------------------------------------ parser
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), "did you mean", and registry choices in --help.

    An option built with ``names=<callable>`` lists the registry's names in its help; the
    registry is only imported when that help is shown, so ``transferguard --help`` stays instant.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        import re

        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            known = re.findall(r"'([^']*)'", m.group(2))
            message = message[:m.start()] + unknown_name("choice", m.group(1), known)
        self.exit(2, f"transferguard: error: {message} (see `{self.prog} --help`)\n")

    def format_help(self) -> str:
        for action in self._actions:
            names = getattr(action, "names", None)
            if names is not None and "{names}" in (action.help or ""):
                action.help = action.help.replace("{names}", ", ".join(names()))
        return super().format_help()


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help with each option's default (none shown for flags and options without one)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in text:
            return text
        return super()._get_help_string(action)


def _names(kind: str):  # noqa: ANN202 - returns a zero-argument callable
    def domains() -> list[str]:
        from .data.registry import DOMAINS, PATTERNS

        return [*DOMAINS, *PATTERNS]

    def methods() -> list[str]:
        from .methods.registry import ALIASES, METHODS

        return [*METHODS, *(f"{a} (= {m})" for a, m in ALIASES.items())]

    def archs() -> list[str]:
        from .models import list_archs

        return list_archs()

    def attacks() -> list[str]:
        from .attacks import SUITE

        return list(SUITE)

    return {"domain": domains, "method": methods, "arch": archs, "attack": attacks}[kind]


def _named(parser: argparse.ArgumentParser, flag: str, kind: str, help: str, **kw) -> None:
    action = parser.add_argument(flag, help=f"{help}; one of: {{names}}", **kw)
    action.names = _names(kind)  # type: ignore[attr-defined]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="transferguard", description=__doc__.splitlines()[0],
                formatter_class=_Formatter)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="debug logging (every step the library logs)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=kw.pop("description", help),
                              formatter_class=_Formatter, **kw)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--device", default="auto",
                        help="auto (the GPU when present), cpu, cuda, cuda:N (gpu = cuda)")
        sp.add_argument("--data-root", default=None,
                        help="folder holding datasets' own files (paper-scale domains); "
                             "default $TRANSFERGUARD_DATA or ~/.cache/transferguard/datasets")
        sp.add_argument("--quiet", action="store_true",
                        help="print only warnings, errors and the final summary")
        sp.add_argument("--overwrite", action="store_true",
                        help="replace finished results at --out (refused otherwise)")

    d = command("datasets", "list every domain, its size and where its data comes from")
    d.add_argument("--root", "--data-root", dest="root", default=None,
                   help="folder holding datasets' own files (as --data-root elsewhere)")
    d.add_argument("--download", default=None, metavar="DOMAIN",
                   help="fetch this domain's files with torchvision into --root (needs internet; "
                        "mnist, usps, svhn, cifar10-9, stl10-9, flowers102)")
    d.set_defaults(func=cmd_datasets)

    r = command("reproduce", "regenerate a figure or table of the papers")
    r.add_argument("name", nargs="?", help="experiment name, or all (see --list)")
    r.add_argument("--list", action="store_true", help="list the registered experiments")
    r.add_argument("--scale", default="offline", choices=["offline", "offline-gpu", "paper"],
                   help="offline: real data available here, CPU-sized budgets; offline-gpu: the "
                        "same, with the EfficientNet-Lite0 family in every paper-2 experiment "
                        "(ablations included), for one GPU; paper: the papers' datasets "
                        "(--data-root) and budgets, for a GPU")
    r.add_argument("--seeds", type=int, default=None,
                   help="number of seeds (default: the experiment's own)")
    r.add_argument("--first-seed", type=int, default=0,
                   help="run seeds K … K+N−1 (an independent replication: give a second run "
                        "disjoint seeds, then `transferguard compare` the two)")
    r.add_argument("--out", default=None, help="run folder (default runs/NAME-SCALE)")
    r.add_argument("--store", default=None,
                   help="model/evaluation cache (default $TRANSFERGUARD_STORE or "
                        "~/.cache/transferguard/store)")
    r.add_argument("--backend", default="local", choices=["serial", "local", "ray"],
                   help="where training units run: this process, local processes, or Ray")
    r.add_argument("--workers", type=int, default=None,
                   help="parallel training units (default: half the cores, or on a CUDA run the GPU "
                        "slots of --gpus-per-unit; 1 runs in-process)")
    r.add_argument("--address", default=None,
                   help="HOST:PORT of an existing Ray cluster (--backend ray)")
    r.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="bf16: forward and loss under bf16 autocast (channels-last on CUDA), a different "
                        "model with its own store key; auto: bf16 on CUDA at --scale paper, fp32 at the "
                        "offline scales (measured no faster there) and on the CPU")
    r.add_argument("--gpus-per-unit", type=float, default=None,
                   help="share of a GPU per training unit on a CUDA run: GPUs each unit requests "
                        "from Ray (default 1), or on the local backend 1/G units per GPU "
                        "(0.25: four; default: as many as fit in its memory)")
    r.add_argument("--report-only", action="store_true",
                   help="rebuild the report(s) in --out from results.csv, computing nothing")
    r.add_argument("--plan", action="store_true",
                   help="print what the run would train, craft and evaluate and an estimate of "
                        "its time, then stop (trains nothing, writes nothing)")
    r.add_argument("--profile", default=None,
                   help="--plan: device profile for the time (h200, h200-bf16), or here to probe this "
                        "machine (default: here offline, h200 at the GPU scales)")
    r.add_argument("--gpus", type=int, default=1,
                   help="--plan: devices the training waves are spread over (wall-time estimate)")
    common(r)
    r.set_defaults(func=cmd_reproduce)

    t = command("train", "train one model with a transfer method")
    _named(t, "--domain", "domain", "training data", required=True)
    _named(t, "--arch", "arch", "architecture", default="dtn")
    _named(t, "--method", "method", "transfer method", default="scratch")
    t.add_argument("--source", default=None, metavar="PATH|ARCH[:WEIGHTS]",
                   help="model to transfer from: a checkpoint (.safetensors + .json, e.g. from "
                        "runs/NAME/checkpoints/), ARCH:WEIGHTS for a bare state dict, or ARCH "
                        "for its public pre-trained weights")
    t.add_argument("--pretrained", default=None,
                   help="public pre-trained weights file for --arch (random init when absent)")
    t.add_argument("--out", required=True,
                   help="checkpoint path: writes OUT.safetensors and its OUT.json sidecar")
    t.add_argument("--epochs", type=int, default=10, help="training epochs (unless --iterations)")
    t.add_argument("--iterations", type=int, default=None,
                   help="SGD steps; overrides --epochs")
    t.add_argument("--batch-size", type=int, default=128, help="images per SGD step")
    t.add_argument("--lr", type=float, default=0.01, help="SGD learning rate")
    t.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    t.add_argument("--schedule", default="constant", choices=["constant", "cosine"],
                   help="learning-rate schedule")
    t.add_argument("--patience", type=int, default=None,
                   help="stop after this many validations without improvement (default: never)")
    t.add_argument("--dropout", type=float, default=None,
                   help="spatial dropout after each stage (methods that take it)")
    t.add_argument("--lambda-feat", type=float, default=None,
                   help="feature-distillation weight (delta, delta-r, renofeation)")
    t.add_argument("--n-per-class", type=int, default=None,
                   help="labelled training images per class (default: all)")
    t.add_argument("--size", type=int, default=32, help="image side in px")
    t.add_argument("--split-seed", type=int, default=0,
                   help="seed of the subsample and validation split")
    t.add_argument("--seed", type=int, default=0, help="training seed")
    t.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="bf16: forward and loss under bf16 autocast (channels-last on CUDA), a different "
                        "model with its own store key; auto: bf16 on CUDA, fp32 on the CPU")
    common(t)
    t.set_defaults(func=cmd_train)

    a = command("attack", "attack a model white-box, or by transfer from --source")
    a.add_argument("--target", required=True, metavar="PATH|ARCH:WEIGHTS",
                   help="the attacked model: a checkpoint, or ARCH:WEIGHTS for a bare state dict")
    a.add_argument("--source", default=None, metavar="PATH|ARCH[:WEIGHTS]",
                   help="craft on this model instead (black-box transfer); default: the target")
    _named(a, "--domain", "domain", "test data (the target's task)", required=True)
    _named(a, "--attack", "attack", "attack", default="fgsm")
    a.add_argument("--eps", default="1/255,2/255,4/255,8/255,16/255,32/255",
                   help="L∞ budgets in pixel units (images in [0, 1]), comma-separated")
    a.add_argument("--steps", type=int, default=10, help="iterations of the iterative attacks")
    a.add_argument("--batch-size", type=int, default=256, help="images per crafting batch")
    a.add_argument("--limit", type=int, default=None,
                   help="attack only the first N test images (default: all)")
    a.add_argument("--size", type=int, default=32, help="image side in px")
    a.add_argument("--seed", type=int, default=0, help="seed of random starts and noise")
    a.add_argument("--out", default=None,
                   help="results folder (default: runs/attack, or runs/attack-N if that holds "
                        "results)")
    common(a)
    a.set_defaults(func=cmd_attack)

    from .auditing.cli import add_audit_parser

    add_audit_parser(sub, common).formatter_class = _Formatter

    c = command("compare", "do two runs reach the same verdicts? (agreement of their findings)",
                description="Match the claims of two run folders (each with findings.csv, or "
                            "an `all` folder of runs) and report how many verdicts decided in "
                            "both agree, and how many stayed inconclusive.")
    c.add_argument("run_a", metavar="RUN_A", help="a run folder (reproduce --out)")
    c.add_argument("run_b", metavar="RUN_B", help="another run folder, e.g. with --first-seed")
    c.set_defaults(func=cmd_compare)
    return p


#: Library hints phrased for the Python API, and how the same step reads on the command line.
_API_HINTS = (
    ("pass root= and download=True",
     "pass --data-root DIR, or run `transferguard datasets --download {name} --root DIR`"),
    ("pass download=True to", "run `transferguard datasets --download {name}` to"),
    (" under root", " under the folder you pass as --data-root"),
)


def cli_message(exc: BaseException) -> str:
    """The error text as the command line should say it (CLI flags, not API arguments)."""
    import re

    text = str(exc)
    m = re.match(r"([\w.-]+): ", text)
    name = m.group(1) if m else "DOMAIN"
    for api, cli in _API_HINTS:
        text = text.replace(api, cli.format(name=name))
    return text


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (never a stale stream)."""

    @property
    def stream(self):  # noqa: ANN201 - a text stream
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.__init__ assigns it
        pass


def _log_to_stderr(level: int) -> None:
    """One stderr handler on the ``transferguard`` logger, at ``level``; calling again replaces it."""
    logger = logging.getLogger("transferguard")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a one-line usage error (2), already printed
        return int(exc.code or 0)
    quiet = bool(getattr(args, "quiet", False))
    level = logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO
    _log_to_stderr(level)
    from ._progress import set_enabled

    set_enabled(not quiet)
    tune_malloc()  # large tensors from the heap, not fresh mmaps: see transferguard._allocator
    try:
        return int(args.func(args) or 0)
    except TransferGuardError as exc:
        print(f"transferguard: error: {cli_message(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (e.g. `| head`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a full disk, a read-only folder, a vanished file: say which, briefly
        where = f": {exc.filename}" if exc.filename else ""
        print(f"transferguard: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("transferguard: interrupted; finished work is kept and will be reused", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

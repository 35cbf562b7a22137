"""The ``smashc`` command line: check, fmt, expand, compile, visualize, search, train,
experiment."""

from __future__ import annotations

import argparse
import difflib
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from smashc import __version__
from smashc.diagnostics import COMMAND_LINE, SmashError, Span, error
from smashc.frontend import printer
from smashc.frontend.expand import expand
from smashc.frontend.flatten import to_module
from smashc.frontend.loader import load_file, read_source
from smashc.frontend.parser import parse
from smashc.ir.graph import MissingAnalysis


class _UsageError(SmashError):
    pass


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad command line exits 1 like every other user error."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def _overrides(pairs: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            if not sep or not name.isidentifier():
                raise ValueError
            out[name] = int(value)
        except ValueError:
            msg = f"-D expects NAME=INTEGER, got '{pair}'"
            raise _UsageError([error("E0102", msg, COMMAND_LINE)]) from None
    return out


def cmd_check(args: argparse.Namespace) -> int:
    """Front end plus the default pass pipeline, so shape errors are found too."""
    from smashc.pipeline import compile_program

    failed = False
    overrides = _overrides(args.define)
    used: set[str] = set()
    for f in args.files:
        try:
            program = load_file(f)
            if program.network is None:
                print(f"{f}: ok (library)")
                continue
            names = {p.name for p in program.network.params}
            # with several files, -D applies to those whose network has the parameter
            mine = (
                overrides
                if len(args.files) == 1
                else {k: v for k, v in overrides.items() if k in names}
            )
            used |= mine.keys()
            ir = compile_program(program, mine).ir
            layers = sum(len(b.layers) for b in ir.blocks)
            print(f"{f}: ok (network {ir.name}: {len(ir.blocks)} blocks, {layers} layers)")
        except SmashError as exc:
            print(exc.render(), file=sys.stderr)
            failed = True
    unused = sorted(set(overrides) - used)
    if len(args.files) > 1 and unused:
        msg = f"no network among the files has a parameter '{unused[0]}'"
        print(SmashError([error("E0102", msg, COMMAND_LINE)]).render(), file=sys.stderr)
        failed = True
    return 1 if failed else 0


def cmd_fmt(args: argparse.Namespace) -> int:
    status = 0
    for f in args.files:
        try:
            name, text = read_source(f)
            new = printer.module(parse(text, name))
        except SmashError as exc:
            print(exc.render(), file=sys.stderr)
            status = 1
            continue
        if new == text:
            continue
        if args.check or args.diff:
            status = 1
            print(f"would reformat {f}", file=sys.stderr)
            if args.diff:
                diff = difflib.unified_diff(
                    text.splitlines(True), new.splitlines(True), f"{f} (original)", f"{f} (fmt)"
                )
                sys.stdout.writelines(diff)
        else:
            Path(f).write_text(new, encoding="utf-8")
            print(f"reformatted {f}")
    return status


def cmd_expand(args: argparse.Namespace) -> int:
    try:
        net = expand(load_file(args.file), _overrides(args.define))
    except SmashError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    sys.stdout.write(printer.module(to_module(net)))
    return 0


def _export(ir, outdir: str) -> None:
    from smashc.backends.export import export_package
    from smashc.backends.fx import class_name, to_fx
    from smashc.ir import dump

    gm = to_fx(ir)
    cls = class_name(ir.name)
    out = export_package(gm, outdir, cls, dump(ir))
    print(f"wrote {out}/ (from {out.name} import load; model = load())", file=sys.stderr)


def _emit_encoding(ir, args: argparse.Namespace) -> None:
    from smashc.backends import encoding

    if args.output is None or not args.output.endswith((".npy", ".pt")):
        msg = "--emit encoding needs -o FILE.npy or -o FILE.pt"
        raise _UsageError([error("E0102", msg, COMMAND_LINE)])
    cfg = encoding.EncodingConfig(
        input=ir.input, classes=ir.classes, convs_per_op=args.convs_per_op
    )
    enc = encoding.encode(ir, cfg)
    for path in encoding.save(enc, args.output):
        print(f"wrote {path}", file=sys.stderr)


def cmd_compile(args: argparse.Namespace) -> int:
    from smashc import report
    from smashc.ir import dump
    from smashc.passes import DEFAULT_PIPELINE
    from smashc.pipeline import compile_program

    passes = (
        DEFAULT_PIPELINE
        if args.passes is None
        else tuple(p.strip() for p in args.passes.split(",") if p.strip())
    )

    def after_each(name, ir):
        if args.print_ir_after_all:
            sys.stdout.write(f"// ----- IR after {name} -----\n{dump(ir)}")

    program = None
    try:
        program = load_file(args.file)
        result = compile_program(
            program,
            _overrides(args.define),
            passes,
            verify_each=args.verify_each,
            after_each=after_each,
        )
        if args.emit == "ir":
            sys.stdout.write(dump(result.ir))
        if args.emit == "code":
            from smashc.backends.fx import to_fx

            sys.stdout.write(to_fx(result.ir).code.lstrip("\n"))
        if args.report:
            sys.stdout.write(report.render(result.ir))
        if args.emit == "encoding":
            _emit_encoding(result.ir, args)
        elif args.output is not None:
            _export(result.ir, args.output)
    except SmashError as exc:
        sources = {**(program.sources if program else {}), **exc.sources}
        print(SmashError(exc.diagnostics, sources).render(), file=sys.stderr)
        return 1
    except MissingAnalysis as exc:
        msg = f"this output needs inferred {exc.what}: include infer-shapes in --passes"
        print(SmashError([error("E0102", msg, COMMAND_LINE)]).render(), file=sys.stderr)
        return 1
    if args.time_passes:
        total = sum(t for _, t in result.timings)
        print("pass timings:", file=sys.stderr)
        for name, t in result.timings:
            print(f"  {name:<22} {t * 1000:8.2f} ms", file=sys.stderr)
        print(f"  {'total':<22} {total * 1000:8.2f} ms", file=sys.stderr)
    return 0


def cmd_visualize(args: argparse.Namespace) -> int:
    from smashc.backends.dot import diagram, write
    from smashc.pipeline import compile_program

    try:
        ir = compile_program(load_file(args.file), _overrides(args.define)).ir
        path = write(diagram(ir, args.view, args.collapse), args.output)
    except SmashError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def _run_overrides(args: argparse.Namespace) -> dict:
    """The flags every run command shares (dataset, data dir, seed, device, precision) that
    were given."""
    pairs = (
        ("dataset", args.dataset),
        ("data_dir", args.data_dir),
        ("seed", args.seed),
        ("device", args.device),
        ("precision", args.precision),
    )
    return {k: v for k, v in pairs if v is not None}


def _scoring_overrides(args: argparse.Namespace) -> dict:
    pairs = (
        ("bn_batches", getattr(args, "bn_batches", None)),
        ("z_samples", getattr(args, "z_samples", None)),
    )
    return {k: v for k, v in pairs if v is not None}


def _settings(cfg, args: argparse.Namespace, apply_flags):
    """``cfg`` (a preset) with ``--config``'s file over it, then the flags
    (``apply_flags(cfg)``), then each ``--set``."""
    from smashc.runtime import settings

    if args.config is not None:
        cfg = settings.load(cfg, args.config)
    cfg = apply_flags(cfg)
    for item in args.set:
        cfg = settings.assign(cfg, item)
    return cfg


def _search_config(args: argparse.Namespace):
    from smashc.runtime.search import PRESETS

    return _settings(PRESETS[args.preset], args, lambda cfg: _search_flags(cfg, args))


def _search_flags(cfg, args: argparse.Namespace):
    from dataclasses import replace

    cfg = replace(cfg, **_run_overrides(args))
    if getattr(args, "epochs", None) is not None:
        cfg = replace(cfg, train=replace(cfg.train, epochs=args.epochs))
    if getattr(args, "archs", None) is not None:
        cfg = replace(cfg, score=replace(cfg.score, archs=args.archs))
    if getattr(args, "refine", None) is not None:
        cfg = replace(cfg, score=replace(cfg.score, refine=args.refine))
    cfg = replace(cfg, score=replace(cfg.score, **_scoring_overrides(args)))
    if getattr(args, "final_epochs", None) is not None:
        cfg = replace(cfg, final=replace(cfg.final, epochs=args.final_epochs))
    if getattr(args, "lr", None) is not None:
        cfg = replace(cfg, final=replace(cfg.final, lr=args.lr))
    return cfg


def cmd_search(args: argparse.Namespace) -> int:
    from pathlib import Path

    from smashc.runtime import alloc, runs, search

    alloc.tune_process()
    out = Path(args.out)
    try:
        cfg = _search_config(args)
        if args.print_config:
            return _print_config(cfg, search.check_config)
        summary = search.search(cfg, out, resume=args.resume, final=not args.no_final)
    except SmashError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except runs.Interrupted:
        return _interrupted(args.argv)
    print(f"ranking:            {summary['ranking']}")
    err = summary["best_smash_error"]
    print(f"best architecture:  {summary['best_smash']} (SMASH error {err:.3f})")
    print(f"its diagram:        {summary['best_diagram']}")
    print(f"score histogram:    {summary['histogram']}")
    if "training_curve" in summary:
        print(f"HyperNet training:  {summary['training_curve']}")
    if "final_test_accuracy" in summary:
        print(
            f"final test accuracy: {summary['final_test_accuracy']:.4f} "
            f"(model, curves, metrics in {summary['final_dir']})"
        )
    return 0


def _print_config(cfg, *checks) -> int:
    """``--print-config``: the resolved settings as the JSON that ``--config`` reads, once
    ``checks`` find them in range; nothing runs. (A run's config.json also has the space's
    input shape and classes from the dataset it loads.)"""
    import json

    for check in checks:
        check(cfg)
    print(json.dumps(cfg.to_json(), indent=2))
    return 0


def _interrupted(argv: list[str]) -> int:
    """Ctrl-C: what was saved, and the command line that goes on from it."""
    argv = [a for a in argv if a != "--resume"]
    again = shlex.join(["smashc", argv[0], "--resume", *argv[1:]])
    print(f"interrupted; the work so far is saved. Continue with: {again}", file=sys.stderr)
    return 130


def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from smashc.runtime import alloc, runs, search

    alloc.tune_process()
    out = Path(args.out)
    try:
        cfg = _search_config(args)
        if args.print_config:
            return _print_config(cfg, search.check_config)
        name, text = read_source(args.file)
        expand(load_file(args.file))  # located errors before any data is loaded
        cfg, device, ds, train, val = search.open_run(cfg, out, args.resume)
        result = search.train_final(
            text, cfg, ds, train, val, out, device, file=name, resume=args.resume
        )
    except SmashError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except runs.Interrupted:
        return _interrupted(args.argv)
    print(f"test accuracy {result['test_acc']:.4f}; model, curves and metrics in {out}")
    return 0


def _experiment_config(args: argparse.Namespace):
    """The experiment's preset with the command line's overrides."""
    from smashc.runtime import experiments

    presets = {
        "correlation": experiments.CORRELATION,
        "low-budget": experiments.LOW_BUDGET,
        "corrupt": experiments.CORRUPT,
        "arch-grad": experiments.ARCH_GRAD,
    }[args.experiment]
    return _settings(presets[args.preset], args, lambda cfg: _experiment_flags(cfg, args))


def _experiment_flags(cfg, args: argparse.Namespace):
    from dataclasses import replace

    s = replace(cfg.search, **_run_overrides(args))
    if args.epochs is not None:
        s = replace(s, train=replace(s.train, epochs=args.epochs))
    s = replace(s, score=replace(s.score, **_scoring_overrides(args)))
    more = {"checkpoint": args.checkpoint} if args.checkpoint is not None else {}
    if args.experiment in ("correlation", "low-budget"):
        if args.archs is not None:
            s = replace(s, score=replace(s.score, archs=args.archs))
        if args.final_epochs is not None:
            s = replace(s, final=replace(s.final, epochs=args.final_epochs))
        for name in ("every", "jobs", "reference"):
            if getattr(args, name, None) is not None:
                more[name] = getattr(args, name)
        more["knobs"] = args.knobs
    else:
        if args.archs is not None:
            more["archs"] = args.archs
        if args.experiment == "corrupt" and args.mode is not None:
            more["modes"] = ("redraw", "shuffle") if args.mode == "both" else (args.mode,)
        if args.experiment == "arch-grad":
            for name in ("proposals", "grad_batches"):
                if getattr(args, name) is not None:
                    more[name] = getattr(args, name)
    return replace(cfg, search=s, **more)


def _print_correlation(summary: dict) -> None:
    def line(st: dict) -> str:
        rho, tau = st["spearman"], st["kendall"]
        return (
            f"rho {rho['value']:+.3f} [{rho['low']:+.3f}, {rho['high']:+.3f}], "
            f"tau {tau['value']:+.3f} [{tau['low']:+.3f}, {tau['high']:+.3f}]"
        )

    c = summary["correlation"]
    print(f"SMASH score vs true error ({summary['trained']} architectures): {line(c['smash'])}")
    for key, label in (("params", "parameters"), ("macs", "MACs"), ("random", "random")):
        print(f"  baseline {label + ':':<11} {line(c[key])}")
    for name, st in summary["knobs"].items():
        knobs = f"bn_batches={st['bn_batches']}, z_samples={st['z_samples']}"
        print(f"  knobs {name + ':':<6} {line(st)} ({knobs})")
    if "reference" in summary and summary["reference"]["correlation"]:
        ref = summary["reference"]
        print(f"  reference run {ref['folder']}: {line(ref['correlation']['smash'])}")
    files = summary["files"]
    print(f"wrote {files['csv']}, {files['plot']} and the summary beside them")


def _print_corrupt(summary: dict) -> None:
    print(f"{'field':<16} {'mode':<8} {'true best':>9} {'ties':>5} {'mean gap':>9}")
    for r in summary["fields"]:
        if not r["archs"]:
            print(f"{r['field']:<16} {r['mode']:<8} {'(no architecture changed)':>25}")
            continue
        frac = f"{r['true_best']}/{r['archs']}"
        print(f"{r['field']:<16} {r['mode']:<8} {frac:>9} {r['ties']:>5} {r['mean_gap']:>+9.4f}")
    print(f"wrote {summary['files']['csv']} and {summary['files']['per_arch']}")


def _print_arch_grad(summary: dict) -> None:
    for kind in ("gradient", "random"):
        s = summary[kind]
        if s["changes"]:
            print(
                f"{kind:<8} changes: mean SMASH-error change {s['mean_change']:+.4f}, "
                f"{s['frac_improved']:.0%} improved ({s['changes']} changes)"
            )
    corr = summary["predicted_vs_actual"]
    if corr:
        rho = corr["spearman"]
        print(
            f"predicted vs actual change: Spearman rho {rho['value']:+.3f} "
            f"[{rho['low']:+.3f}, {rho['high']:+.3f}]"
        )
    print(f"wrote {summary['files']['csv']}")


def cmd_experiment(args: argparse.Namespace) -> int:
    from pathlib import Path

    from smashc.runtime import alloc, experiments, runs, search

    alloc.tune_process()
    run, show = {
        "correlation": (experiments.run_correlation, _print_correlation),
        "low-budget": (experiments.run_correlation, _print_correlation),
        "corrupt": (experiments.run_corrupt, _print_corrupt),
        "arch-grad": (experiments.run_arch_grad, _print_arch_grad),
    }[args.experiment]
    out = Path(args.out or f"runs/{args.experiment}")
    try:
        cfg = _experiment_config(args)
        if args.print_config:
            return _print_config(cfg, experiments.check, lambda c: search.check_config(c.search))
        if args.experiment in ("correlation", "low-budget"):
            summary = run(cfg, out, args.experiment)
        else:
            summary = run(cfg, out)
    except SmashError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except runs.Interrupted:
        again = shlex.join(["smashc", *args.argv])
        print(f"interrupted; finished work is kept. Continue with: {again}", file=sys.stderr)
        return 130
    show(summary)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(
        prog="smashc", description="Compiler for .smash neural architecture descriptions."
    )
    p.add_argument("--version", action="version", version=f"smashc {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    define = _ArgumentParser(add_help=False)
    define.add_argument(
        "-D",
        dest="define",
        action="append",
        default=[],
        metavar="NAME=N",
        help="override a network parameter (repeatable)",
    )

    c = sub.add_parser("check", parents=[define], help="parse, expand and validate .smash files")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.set_defaults(run=cmd_check)

    f = sub.add_parser("fmt", help="rewrite .smash files in canonical form")
    f.add_argument("files", nargs="+", metavar="FILE")
    f.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    f.add_argument("--diff", action="store_true", help="print what would change, touch nothing")
    f.set_defaults(run=cmd_fmt)

    e = sub.add_parser(
        "expand", parents=[define], help="print the network with templates and loops expanded"
    )
    e.add_argument("file", metavar="FILE")
    e.set_defaults(run=cmd_expand)

    k = sub.add_parser("compile", parents=[define], help="compile to the graph IR and run passes")
    k.add_argument("file", metavar="FILE")
    k.add_argument(
        "--emit",
        choices=("ir", "code", "encoding", "none"),
        default="none",
        help="print the IR or the generated fx code, or write the c encoding to -o",
    )
    k.add_argument(
        "--convs-per-op",
        type=int,
        choices=(1, 4),
        default=1,
        help="encoding layout: 1 conv per op (paper default) or the variable 4-conv op",
    )
    k.add_argument("--report", action="store_true", help="print the per-stage report")
    k.add_argument("--passes", metavar="A,B,C", help="passes to run instead of the default")
    k.add_argument("--print-ir-after-all", action="store_true", help="dump the IR after each pass")
    k.add_argument("--verify-each", action="store_true", help="run the verifier after each pass")
    k.add_argument("--time-passes", action="store_true", help="print each pass's run time")
    k.add_argument(
        "-o",
        dest="output",
        metavar="OUT",
        help="a directory for an importable Python package (torch only), or with "
        "--emit encoding a .npy/.pt file (plus a .json sidecar)",
    )
    k.set_defaults(run=cmd_compile)

    v = sub.add_parser("visualize", parents=[define], help="draw the network with graphviz")
    v.add_argument("file", metavar="FILE")
    v.add_argument("-o", dest="output", required=True, metavar="OUT.{svg,png,pdf,dot}")
    v.add_argument(
        "--view",
        choices=("banks", "dataflow"),
        default="banks",
        help="memory banks as lanes (default) or the IR's dataflow graph",
    )
    v.add_argument("--collapse", action="store_true", help="draw each block as one node")
    v.set_defaults(run=cmd_visualize)

    run = _ArgumentParser(add_help=False)
    run.add_argument(
        "--preset",
        choices=("demo", "smoke", "paper"),
        default="demo",
        help="settings to start from (default: demo; smoke: seconds, for tests)",
    )
    run.add_argument(
        "--config",
        metavar="FILE.json",
        help="settings over the preset's: a run's config.json repeats that run, a file with a "
        "few of its keys changes those",
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change any setting, after the other flags (repeatable): --set final.momentum=0.8 "
        "--set space.max_kernel=5; the keys are those of config.json (docs/search.md)",
    )
    run.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved settings as JSON (what --config reads) and stop",
    )
    run.add_argument("--dataset", choices=("fashion-mnist", "cifar10", "cifar100", "synthetic"))
    run.add_argument("--data-dir", help="folder with the dataset files")
    run.add_argument("--seed", type=int)
    run.add_argument("--device", choices=("cpu", "cuda", "auto"))
    run.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        help="forward passes in float32 or in bfloat16 autocast (default auto: bf16 where the "
        "CPU or GPU computes it natively)",
    )

    scoring = _ArgumentParser(add_help=False)
    scoring.add_argument(
        "--bn-batches",
        type=int,
        metavar="B",
        help="scoring: recalibrate each architecture's BN statistics on B training batches",
    )
    scoring.add_argument(
        "--z-samples", type=int, metavar="Z", help="scoring: average the error over Z noise samples"
    )

    s = sub.add_parser("search", parents=[run, scoring], help="run a SMASH architecture search")
    s.add_argument("--out", default="runs/search", help="output folder (default: runs/search)")
    s.add_argument("--epochs", type=int, help="HyperNet training epochs")
    s.add_argument("--archs", type=int, help="architectures to score")
    s.add_argument("--refine", type=int, help="perturbations of the best to try")
    s.add_argument("--final-epochs", type=int, help="epochs of the winner's final training")
    s.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    s.add_argument("--no-final", action="store_true", help="stop after the ranking")
    s.set_defaults(run=cmd_search)

    t = sub.add_parser("train", parents=[run], help="train one architecture normally")
    t.add_argument("file", metavar="ARCH.smash")
    t.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    t.add_argument("--final-epochs", "--epochs", dest="final_epochs", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    t.set_defaults(run=cmd_train)

    x = sub.add_parser("experiment", help="the paper's experiments on the SMASH score")
    xs = x.add_subparsers(dest="experiment", required=True)
    common = _ArgumentParser(add_help=False)
    common.add_argument(
        "--out", metavar="DIR", help="output folder (default: runs/EXPERIMENT); rerun to resume"
    )
    common.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="a trained SMASH network (smashc search's OUT/checkpoint.pt) instead of training one",
    )
    common.add_argument("--epochs", type=int, metavar="E", help="HyperNet training epochs")

    corr = _ArgumentParser(add_help=False)
    corr.add_argument(
        "--reference",
        metavar="DIR",
        help="a correlation experiment's folder: score its trained architectures with this "
        "run's SMASH network and reuse their true errors (no normal training)",
    )
    corr.add_argument("--archs", type=int, metavar="K", help="architectures to score (paper: 250)")
    corr.add_argument(
        "--every", type=int, metavar="M", help="train every M-th in order of score (paper: 5)"
    )
    corr.add_argument(
        "--final-epochs", type=int, metavar="E", help="epochs of each normal training"
    )
    corr.add_argument("--jobs", type=int, metavar="N", help="normal trainings run in N processes")
    corr.add_argument(
        "--knobs", action="store_true", help="also report rho with BN recalibration / z averaging"
    )
    xc = xs.add_parser(
        "correlation",
        parents=[run, common, scoring, corr],
        help="SMASH score vs true error of normally trained architectures (Figure 3)",
    )
    xc.set_defaults(run=cmd_experiment)
    xl = xs.add_parser(
        "low-budget",
        parents=[run, common, scoring, corr],
        help="the correlation experiment with a much smaller HyperNet",
    )
    xl.set_defaults(run=cmd_experiment)
    xk = xs.add_parser(
        "corrupt",
        parents=[run, common, scoring],
        help="score architectures with corrupted encodings c",
    )
    xk.add_argument("--archs", type=int, metavar="M", help="architectures to corrupt")
    xk.add_argument("--mode", choices=("redraw", "shuffle", "both"), help="how to corrupt")
    xk.set_defaults(run=cmd_experiment)
    xg = xs.add_parser(
        "arch-grad", parents=[run, common, scoring], help="dE/dc-proposed op changes vs random ones"
    )
    xg.add_argument("--archs", type=int, metavar="M", help="base architectures")
    xg.add_argument(
        "--proposals", type=int, metavar="N", help="changes of each kind per architecture"
    )
    xg.add_argument("--grad-batches", type=int, metavar="B", help="validation batches for dE/dc")
    xg.set_defaults(run=cmd_experiment)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.run(args)
    except _UsageError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except OSError as exc:  # what escapes the commands: an output they cannot write
        print(_write_error(exc).render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # outside the loops that save their work on Ctrl-C
        print("interrupted", file=sys.stderr)
        return 130


def _write_error(exc: OSError) -> SmashError:
    """E0306 at the path the system refused (``--out``, ``-o`` or a file below them)."""
    where = "<command line>" if exc.filename is None else str(exc.filename)
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileExistsError | NotADirectoryError):
        reason = "a file is in the way where a folder is needed"
    return SmashError([error("E0306", f"cannot write here: {reason}", Span(where, 1, 1, 1, 1))])

"""The compiler's commands: check, fmt, expand, compile, visualize."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from smashc.backends.budget import DEFAULT_MAX_PARAMS, check_fits
from smashc.cli.common import ArgumentParser, UsageError, overrides
from smashc.diagnostics import COMMAND_LINE, SmashError, error
from smashc.frontend import printer
from smashc.frontend.expand import expand
from smashc.frontend.flatten import to_module
from smashc.frontend.loader import load_file, read_source
from smashc.frontend.parser import parse
from smashc.ir.graph import MissingAnalysis


def positive_int(text: str) -> int:
    """An argparse type: a positive decimal integer (``1_000`` and non-ASCII digits refused)."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return int(text)


def cmd_check(args: argparse.Namespace) -> int:
    """Front end plus the default pass pipeline, so shape errors are found too."""
    from smashc.pipeline import compile_program

    failed = False
    defined = overrides(args.define)
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
                defined
                if len(args.files) == 1
                else {k: v for k, v in defined.items() if k in names}
            )
            used |= mine.keys()
            ir = compile_program(program, mine).ir
            layers = sum(len(b.layers) for b in ir.blocks)
            print(f"{f}: ok (network {ir.name}: {len(ir.blocks)} blocks, {layers} layers)")
        except SmashError as exc:
            print(exc.render(), file=sys.stderr)
            failed = True
    unused = sorted(set(defined) - used)
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
        net = expand(load_file(args.file), overrides(args.define))
    except SmashError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    sys.stdout.write(printer.module(to_module(net)))
    return 0


def _export(ir, outdir: str, max_params: int, weights: str | None) -> None:
    from smashc.backends.export import export_package
    from smashc.backends.fx import class_name, to_fx
    from smashc.cli.interop import load_weights, with_weights
    from smashc.ir import dump

    gm = to_fx(ir, max_params)
    if weights is not None:
        gm = with_weights(gm, load_weights(weights), weights)
    cls = class_name(ir.name)
    out = export_package(gm, outdir, cls, dump(ir))
    print(f"wrote {out}/ (from {out.name} import load; model = load())", file=sys.stderr)


def _emit_encoding(ir, args: argparse.Namespace) -> None:
    from smashc.backends import encoding

    if args.output is None or not args.output.endswith((".npy", ".pt")):
        msg = "--emit encoding needs -o FILE.npy or -o FILE.pt"
        raise UsageError([error("E0102", msg, COMMAND_LINE)])
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
            overrides(args.define),
            passes,
            verify_each=args.verify_each,
            after_each=after_each,
        )
        if args.emit == "code" or (args.output is not None and args.emit != "encoding"):
            check_fits(result.ir, args.max_params)  # before torch is even imported
        if args.emit == "ir":
            sys.stdout.write(dump(result.ir))
        if args.emit == "code":
            from smashc.backends.fx import to_fx

            sys.stdout.write(to_fx(result.ir, args.max_params).code.lstrip("\n"))
        if args.report:
            sys.stdout.write(report.render(result.ir))
        if args.emit == "encoding":
            _emit_encoding(result.ir, args)
        elif args.emit == "onnx":
            from smashc.cli.interop import emit_onnx

            emit_onnx(result.ir, args)
        elif args.output is not None:
            _export(result.ir, args.output, args.max_params, args.weights)
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
        ir = compile_program(load_file(args.file), overrides(args.define)).ir
        path = write(diagram(ir, args.view, args.collapse), args.output)
    except SmashError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def add_commands(sub) -> None:
    """check, fmt, expand, compile and visualize, as subcommands of ``sub``."""
    define = ArgumentParser(add_help=False)
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
        choices=("ir", "code", "encoding", "onnx", "none"),
        default="none",
        help="print the IR or the generated fx code, or write the c encoding or ONNX to -o",
    )
    k.add_argument(
        "--weights",
        metavar="W",
        help="weights for -o (a package) or --emit onnx: a state dict .pt (e.g. from "
        "`smashc lift --weights`) or a compiled package's folder; default: freshly initialised",
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
        help="a directory for an importable Python package (torch only), with "
        "--emit encoding a .npy/.pt file (plus a .json sidecar), with --emit onnx a .onnx file",
    )
    k.add_argument(
        "--max-params",
        type=positive_int,
        default=DEFAULT_MAX_PARAMS,
        metavar="N",
        help="refuse to build (-o, --emit code) a network with more parameters than this "
        f"(default {DEFAULT_MAX_PARAMS:,}; weights must also fit in the memory available)",
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

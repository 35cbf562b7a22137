"""The ``smashc`` command line: check, fmt, expand. User errors print diagnostics and exit 1."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from smashc import __version__
from smashc.diagnostics import SmashError, Span, error
from smashc.frontend import printer
from smashc.frontend.expand import expand
from smashc.frontend.flatten import to_module
from smashc.frontend.loader import load_file, read_source
from smashc.frontend.parser import parse


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
            span = Span("<command line>", 1, 1, 1, 1)
            msg = f"-D expects NAME=INTEGER, got '{pair}'"
            raise _UsageError([error("E0102", msg, span)]) from None
    return out


def _summary(net) -> str:
    layers = sum(len(b.layers) for b in net.blocks)
    return f"network {net.name}: {len(net.blocks)} blocks, {layers} layers"


def cmd_check(args: argparse.Namespace) -> int:
    failed = False
    overrides = _overrides(args.define)
    for f in args.files:
        try:
            program = load_file(f)
            if program.network is not None:
                net = expand(program, overrides)
                print(f"{f}: ok ({_summary(net)})")
            else:
                print(f"{f}: ok (library)")
        except SmashError as exc:
            print(exc.render(), file=sys.stderr)
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except _UsageError as exc:
        print(exc.render(), file=sys.stderr)
        return 1

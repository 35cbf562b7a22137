"""The ``smashc`` command line: check, fmt, expand, compile, visualize (``cli.compiling``),
lift (``cli.interop``), search, train, experiment (``cli.running``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from smashc import __version__
from smashc.cli import compiling, interop, running
from smashc.cli.common import ArgumentParser, UsageError
from smashc.diagnostics import SmashError, Span, error
from smashc.runtime import lock


def build_parser(full: bool = True) -> ArgumentParser:
    """The whole command line; with ``full`` False the run commands have no options (what
    a compiler command needs, without importing the runtime)."""
    p = ArgumentParser(
        prog="smashc", description="Compiler for .smash neural architecture descriptions."
    )
    p.add_argument("--version", action="version", version=f"smashc {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    compiling.add_commands(sub)
    interop.add_commands(sub)
    running.add_commands(sub, full)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(full=bool(argv) and argv[0] in running.COMMANDS).parse_args(argv)
    args.argv = argv
    try:
        return args.run(args)
    except UsageError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except OSError as exc:  # what escapes the commands: an output they cannot write
        print(_write_error(exc).render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # outside the loops that save their work on Ctrl-C
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        lock.release_all()  # the run folder a run command held


def _write_error(exc: OSError) -> SmashError:
    """E0306 at the path the system refused (``--out``, ``-o`` or a file below them)."""
    where = "<command line>" if exc.filename is None else str(exc.filename)
    reason = exc.strerror or str(exc)
    if isinstance(exc, FileExistsError | NotADirectoryError):
        reason = "a file is in the way where a folder is needed"
    return SmashError([error("E0306", f"cannot write here: {reason}", Span(where, 1, 1, 1, 1))])

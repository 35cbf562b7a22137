"""What every ``smashc`` command shares: argparse that exits 1, usage errors, ``-D``."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from smashc.diagnostics import COMMAND_LINE, SmashError, error


class UsageError(SmashError):
    """A bad command line (E0102)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad command line exits 1 like every other user error."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


_INTEGER = re.compile(r"-?[0-9]+")


def overrides(pairs: Sequence[str]) -> dict[str, int]:
    """``-D NAME=N`` pairs as network parameter overrides."""
    out: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        # an integer as the language writes one: ASCII digits only (int() would also take
        # other scripts' digits and underscores)
        if not sep or not name.isidentifier() or not _INTEGER.fullmatch(value):
            msg = f"-D expects NAME=INTEGER, got '{pair}'"
            raise UsageError([error("E0102", msg, COMMAND_LINE)])
        out[name] = int(value)
    return out


def report(exc: SmashError) -> int:
    """Prints ``exc``'s diagnostics (in one write: the processes of a process group share a
    terminal); the exit status of a user error."""
    sys.stderr.write(exc.render() + "\n")
    sys.stderr.flush()
    return 1

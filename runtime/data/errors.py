"""The data package's user errors: ``E0701``-``E0704`` SmashError s at a file or option."""

from __future__ import annotations

from pathlib import Path

from smashc.diagnostics import SmashError, Span, error

# Where an error in a command-line data option (dataset name, sizes) points.
CMDLINE = "<command line>"


def fail(code: str, message: str, where: str | Path) -> SmashError:
    """An error ``code`` with ``message`` located at ``where`` (a file, or :data:`CMDLINE`)."""
    return SmashError([error(code, message, Span(str(where), 1, 1, 1, 1))])

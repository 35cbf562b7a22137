"""Test helpers: repository paths and golden-file comparison.

Golden files are only ever rewritten when the environment variable
``SMASHC_UPDATE_GOLDENS=1`` is set, e.g.::

    SMASHC_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/test_diagnostics.py

Otherwise a mismatch fails the test with a unified diff (golden -> actual).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
EXAMPLES = ROOT / "examples"

UPDATE_GOLDENS = os.environ.get("SMASHC_UPDATE_GOLDENS") == "1"


def check_golden(path: Path, actual: str) -> None:
    """Compares ``actual`` with the golden file ``path`` byte for byte (or rewrites it)."""
    if UPDATE_GOLDENS:
        path.write_bytes(actual.encode("utf-8"))
        return
    if not path.exists():
        pytest.fail(
            f"golden file {path} is missing; create it with SMASHC_UPDATE_GOLDENS=1",
            pytrace=False,
        )
    expected = path.read_bytes().decode("utf-8")
    if expected == actual:
        return
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"{path} (golden)",
            tofile="actual",
        )
    )
    pytest.fail(
        f"output differs from {path} (refresh with SMASHC_UPDATE_GOLDENS=1 "
        f"if the change is intended):\n{diff}",
        pytrace=False,
    )


def example_files() -> list[Path]:
    """The bundled examples (picked up at collection time; may be empty)."""
    return sorted(EXAMPLES.glob("*.smash"))

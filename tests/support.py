"""Test helpers: repository paths, golden-file comparison, running ``smashc`` in a process.

Golden files are only ever rewritten when the environment variable
``SMASHC_UPDATE_GOLDENS=1`` is set, e.g.::

    SMASHC_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/test_diagnostics.py

Otherwise a mismatch fails the test with a unified diff (golden -> actual).
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
EXAMPLES = ROOT / "examples"

UPDATE_GOLDENS = os.environ.get("SMASHC_UPDATE_GOLDENS") == "1"
# the test runs' networks are tiny: on a busy 2-core machine OpenMP threads make a smoke
# search 4x slower without changing any result
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


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


def smashc(*args: object, cwd: Path | None = None, timeout: float = 300):
    """``python -m smashc ARGS`` in the repository root (or ``cwd``), with ``ENV``."""
    return subprocess.run(
        [sys.executable, "-m", "smashc", *map(str, args)],
        cwd=cwd or ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """``proc``, after checking that it exited 0 without a traceback."""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def exported_output_shape(folder: Path, input_shape: tuple[int, ...]) -> str:
    """What ``load()`` of the model exported into ``folder`` gives for one zero input of
    ``input_shape``, as torch prints its shape, in a fresh process on the CPU."""
    shape = ", ".join(map(str, input_shape))
    probe = f"from model import load; import torch; print(load()(torch.zeros(1, {shape})).shape)"
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=folder, env=ENV, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()

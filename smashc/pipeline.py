"""The compiler as one function per entry point: .smash text or file -> passes -> IRGraph."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from smashc.diagnostics import SmashError
from smashc.frontend.expand import expand
from smashc.frontend.loader import Program, load_file, load_text
from smashc.ir import IRGraph, lower
from smashc.passes import DEFAULT_PIPELINE, PipelineResult, run_pipeline


def compile_program(
    program: Program,
    overrides: Mapping[str, int] | None = None,
    passes: Sequence[str] = DEFAULT_PIPELINE,
    *,
    verify_each: bool = False,
    after_each: Callable[[str, IRGraph], None] | None = None,
) -> PipelineResult:
    """Expands, lowers and runs ``passes``; SmashErrors carry the program's sources."""
    net = expand(program, overrides)
    try:
        return run_pipeline(lower(net), passes, verify_each=verify_each, after_each=after_each)
    except SmashError as exc:
        raise SmashError(exc.diagnostics, {**program.sources, **exc.sources}) from None


def compile_file(path: str | Path, overrides: Mapping[str, int] | None = None, **kw) -> IRGraph:
    """IR of a .smash file after the default pipeline (or ``passes=``)."""
    return compile_program(load_file(path), overrides, **kw).ir


def compile_text(text: str, overrides: Mapping[str, int] | None = None, **kw) -> IRGraph:
    """IR of .smash source text after the default pipeline (or ``passes=``)."""
    return compile_program(load_text(text), overrides, **kw).ir

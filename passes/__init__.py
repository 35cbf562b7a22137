"""Pass registry, the default pipeline, and the pass manager.

A pass is a pure function ``(IRGraph) -> IRGraph`` registered under a name. It may raise
SmashError for located user errors (e.g. a kernel that does not fit its feature map).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from smashc.diagnostics import SmashError, Span, error
from smashc.ir.graph import IRGraph, MissingAnalysis

Pass = Callable[[IRGraph], IRGraph]

PASSES: dict[str, Pass] = {}


def register(name: str) -> Callable[[Pass], Pass]:
    def deco(fn: Pass) -> Pass:
        if name in PASSES:
            raise ValueError(f"pass {name!r} registered twice")
        PASSES[name] = fn
        return fn

    return deco


# Imported for their @register side effect; the order here is irrelevant.
from smashc.passes import infer_shapes, normalize, recognize, verify  # noqa: E402, F401

DEFAULT_PIPELINE: tuple[str, ...] = (
    "verify",
    "infer-shapes",
    "remove-zero-reads",
    "fold-trivial",
    "remove-dead-writes",
    "canonicalize",
    "cse",
    "infer-shapes",
    "recognize-patterns",
    "verify",
)


# The default pipeline without its checks and analyses, for the one-shot training loop:
# sampled architectures are valid by construction (the tests verify them with the full
# pipeline), and each step compiles a new one.
TRAINING_PIPELINE: tuple[str, ...] = (
    "infer-shapes",
    "remove-zero-reads",
    "fold-trivial",
    "remove-dead-writes",
    "canonicalize",
    "cse",
)


class PassFailure(Exception):
    """A pass broke the IR's invariants: a bug in that pass, not a user error."""


@dataclass
class PipelineResult:
    ir: IRGraph
    timings: list[tuple[str, float]] = field(default_factory=list)


def run_pipeline(
    ir: IRGraph,
    names: Sequence[str] = DEFAULT_PIPELINE,
    *,
    verify_each: bool = False,
    after_each: Callable[[str, IRGraph], None] | None = None,
) -> PipelineResult:
    """Runs ``names`` in order; with ``verify_each`` the verifier runs after every pass."""
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        listed = ", ".join(sorted(PASSES))
        span = Span("<command line>", 1, 1, 1, 1)
        msg = f"unknown pass '{unknown[0]}' (passes: {listed})"
        raise SmashError([error("E0102", msg, span)])
    result = PipelineResult(ir)
    done: list[str] = []
    for name in names:
        start = time.perf_counter()
        try:
            out = PASSES[name](result.ir)
        except SmashError:
            raise
        except MissingAnalysis as exc:
            span = Span("<command line>", 1, 1, 1, 1)
            msg = f"pass '{name}' needs inferred {exc.what}: run infer-shapes before it"
            raise SmashError([error("E0102", msg, span)]) from None
        except Exception as exc:
            after = ", ".join(done) or "nothing"
            raise PassFailure(f"pass '{name}' crashed (after: {after}): {exc!r}") from exc
        result.timings.append((name, time.perf_counter() - start))
        done.append(name)
        if verify_each:
            problems = verify.check(out)
            if problems:
                after = ", ".join(done[:-1]) or "nothing"
                shown = "; ".join(d.message for d in problems[:5])
                raise PassFailure(f"IR invalid after pass '{name}' (after: {after}): {shown}")
        if after_each is not None:
            after_each(name, out)
        result.ir = out
    return result

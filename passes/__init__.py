"""The pass manager: the registered passes, the default and training pipelines, run_pipeline.

A pass is a pure function ``(IRGraph) -> IRGraph`` registered under a name with the analyses
it needs, provides and keeps (``smashc.passes.registry``). It may raise SmashError for
located user errors (e.g. a kernel that does not fit its feature map).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from smashc.diagnostics import SmashError
from smashc.ir.graph import IRGraph, MissingAnalysis

# Importing the pass modules registers their passes; the order here is irrelevant.
from smashc.passes import infer_shapes, normalize, recognize, verify  # noqa: F401
from smashc.passes.order import carried_by, check_order, resolve, trim
from smashc.passes.registry import ANALYSES, PASSES, Pass, PassFn, register

__all__ = [
    "ANALYSES",
    "DEFAULT_PIPELINE",
    "PASSES",
    "TRAINING_NEEDS",
    "TRAINING_PIPELINE",
    "Pass",
    "PassFailure",
    "PassFn",
    "PipelineResult",
    "check_order",
    "register",
    "resolve",
    "run_pipeline",
    "trim",
]

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

# What the one-shot training backend reads of the IR: the HyperNet-weight graph and the
# encoding c are built from the shapes, and no block's pattern.
TRAINING_NEEDS: tuple[str, ...] = ("shapes",)

# The default pipeline cut to what that backend needs (``trim``): sampled architectures are
# valid by construction (the tests verify them with the full pipeline), and each step
# compiles a new one.
TRAINING_PIPELINE: tuple[str, ...] = trim(DEFAULT_PIPELINE, TRAINING_NEEDS)


class PassFailure(Exception):
    """A pass broke the IR's invariants or its declarations: a bug in that pass, not a user
    error."""


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
    """Runs ``names`` in order; with ``verify_each`` the verifier runs after every pass.

    Raises SmashError (E0102) before running anything when a name is unknown or a pass's
    needs are not met (``check_order``); passes raise SmashError for user errors.
    """
    passes = resolve(names)
    check_order(passes, carried_by(ir))
    result = PipelineResult(ir)
    done: list[str] = []
    for name, p in zip(names, passes, strict=True):
        start = time.perf_counter()
        try:
            out = p.fn(result.ir)
        except SmashError:
            raise
        except MissingAnalysis as exc:
            msg = f"pass '{name}' reads {exc.what} but does not declare needs=({exc.what!r},)"
            raise PassFailure(msg) from exc
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

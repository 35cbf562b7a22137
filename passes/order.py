"""Pipeline order: a pipeline checked against its passes' declarations, and trimmed for a backend.

A pipeline is valid when every name is registered and every pass's ``needs`` are valid where
it runs: provided by an earlier pass (or carried by the input IR) and not invalidated by a
rewrite since. Both are user errors (E0102 at ``<command line>``), found before any pass runs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from smashc.diagnostics import COMMAND_LINE, SmashError, error
from smashc.ir.graph import IRGraph
from smashc.passes.registry import ANALYSES, PASSES, Pass


def resolve(names: Sequence[str]) -> tuple[Pass, ...]:
    """The registered passes called ``names``; an unknown name is a SmashError (E0102)."""
    try:
        return tuple(PASSES[n] for n in names)
    except KeyError as exc:
        listed = ", ".join(sorted(PASSES))
        msg = f"unknown pass '{exc.args[0]}' (passes: {listed})"
        raise SmashError([error("E0102", msg, COMMAND_LINE)]) from None


def carried_by(ir: IRGraph) -> tuple[str, ...]:
    """The analyses ``ir`` already carries (its fields that are set)."""
    return tuple(a for a in ANALYSES if getattr(ir, a) is not None)


# Keyed by the Pass objects (hashed by identity), so a pass registered again under the same
# name is checked afresh. The training loop runs one pipeline per step: checking it once
# keeps the check off that path.
@functools.lru_cache(maxsize=256)
def check_order(passes: tuple[Pass, ...], carried: tuple[str, ...] = ()) -> None:
    """Raises SmashError (E0102) naming the first pass whose needs are not valid where it
    runs, and what to run before it; ``carried`` are the analyses the input IR has."""
    valid = set(carried)
    lost_in: dict[str, str] = {}  # analysis -> the rewrite that last invalidated it
    for p in passes:
        for a in p.needs:
            if a not in valid:
                raise SmashError([error("E0102", _unmet(p.name, a, lost_in.get(a)), COMMAND_LINE)])
        for a in p.invalidates:
            valid.discard(a)
            lost_in[a] = p.name
        valid.update(p.provides)


def _unmet(name: str, analysis: str, lost_in: str | None) -> str:
    providers = " or ".join(p.name for p in PASSES.values() if analysis in p.provides)
    if lost_in is None:
        return f"pass '{name}' needs {ANALYSES[analysis]}: run {providers} before it"
    return (
        f"pass '{name}' needs {ANALYSES[analysis]}, which '{lost_in}' before it does not "
        f"keep: run {providers} after '{lost_in}'"
    )


def trim(pipeline: Sequence[str], needs: Sequence[str]) -> tuple[str, ...]:
    """``pipeline`` (run on lowered IR) cut to what a backend reading ``needs`` must run:

    1. without its checks;
    2. without an analysis whose results are all still valid where it runs (an earlier pass
       provided them and no rewrite since invalidated them);
    3. without an analysis none of whose results the backend or a later pass needs.

    Rewrites always stay: they change the network the backend builds.
    """
    passes = [p for p in resolve(pipeline) if p.kind != "check"]
    fresh: list[Pass] = []
    valid: set[str] = set()
    for p in passes:
        if p.kind == "analysis" and valid.issuperset(p.provides):
            continue
        fresh.append(p)
        valid = valid.difference(p.invalidates).union(p.provides)
    kept: list[Pass] = []
    wanted = set(needs)
    for p in reversed(fresh):
        if p.kind == "analysis" and wanted.isdisjoint(p.provides):
            continue
        kept.append(p)
        # What this pass provides or invalidates cannot come from a pass before it.
        wanted = wanted.difference(p.provides, p.invalidates).union(p.needs)
    return tuple(p.name for p in reversed(kept))

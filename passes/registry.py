"""The pass registry: every pass under its name, with the analyses it needs, provides and keeps.

An *analysis* is a typed field of ``IRGraph`` that a pass computes and later passes or
backends read: ``shapes`` (``infer-shapes``) and ``patterns`` (``recognize-patterns``). A pass
declares its kind and how it relates to each analysis; the pass manager checks a pipeline
against these declarations before it runs anything (``smashc.passes.order``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from smashc.ir.graph import IRGraph

PassFn = Callable[[IRGraph], IRGraph]
Kind = Literal["check", "analysis", "rewrite"]

# Each analysis by its IRGraph field name, with the phrase that names its result in messages.
ANALYSES: dict[str, str] = {"shapes": "inferred shapes", "patterns": "recognised patterns"}


@dataclass(frozen=True, eq=False)
class Pass:
    """A registered pass and its declarations (compared and hashed by identity).

    ``kind`` is "check" (returns its input unchanged or raises SmashError), "analysis"
    (leaves the graph alone and sets the analyses it ``provides``) or "rewrite" (changes
    the graph). ``needs`` are the analyses it reads: they must be valid when it runs.
    ``keeps`` are the analyses a rewrite leaves valid (it updates them for what it changed);
    every other analysis is invalidated by a rewrite, and by nothing else.
    """

    name: str
    fn: PassFn
    kind: Kind = "rewrite"
    needs: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    keeps: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted({*self.needs, *self.provides, *self.keeps} - ANALYSES.keys())
        if unknown:
            raise ValueError(f"pass {self.name!r} declares unknown analyses {unknown}")
        if self.kind == "check" and self.provides:
            raise ValueError(f"check {self.name!r} cannot provide analyses")
        if self.kind == "analysis" and not self.provides:
            raise ValueError(f"analysis {self.name!r} provides nothing")
        if self.kind != "rewrite" and self.keeps:
            raise ValueError(f"{self.kind} {self.name!r} keeps every analysis; drop keeps=")

    @property
    def invalidates(self) -> tuple[str, ...]:
        """The analyses no longer valid after this pass (only a rewrite invalidates any)."""
        if self.kind != "rewrite":
            return ()
        return tuple(a for a in ANALYSES if a not in self.keeps and a not in self.provides)

    def __call__(self, ir: IRGraph) -> IRGraph:
        return self.fn(ir)


PASSES: dict[str, Pass] = {}


def register(
    name: str,
    *,
    kind: Kind = "rewrite",
    needs: tuple[str, ...] = (),
    provides: tuple[str, ...] = (),
    keeps: tuple[str, ...] = (),
) -> Callable[[PassFn], PassFn]:
    """Registers the decorated function as pass ``name`` with these declarations; the
    function itself is returned unchanged."""

    def deco(fn: PassFn) -> PassFn:
        if name in PASSES:
            raise ValueError(f"pass {name!r} registered twice")
        PASSES[name] = Pass(name, fn, kind, needs, provides, keeps)
        return fn

    return deco

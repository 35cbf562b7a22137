"""The ``verify`` pass: names and checks every structural invariant of the IR.

Pre: any IRGraph. Post: unchanged IR; raises SmashError (E0400) listing every broken invariant.
Invariants: acyclic; exactly one Input and one Output; operand indices 0..n-1 with the
arity each payload allows; bank versions of one bank are numbered in
increasing order along their chain; with shapes inferred, every node has a shape and the
shapes agree with each payload's rule (re-derived by infer-shapes).
"""

from __future__ import annotations

import networkx as nx

from smashc.diagnostics import NOSPAN, Diagnostic, SmashError, error
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import Add, BankVersion, Concat, Input, OpNode, Output, Slice
from smashc.passes.registry import register

# (min, max) operands per payload type.
_ARITY = {
    Input: (0, 0),
    Output: (1, 1),
    OpNode: (1, 1),
    Slice: (1, 1),
    Concat: (1, None),
    Add: (1, None),
    BankVersion: (0, 2),
}


def check(ir: IRGraph) -> list[Diagnostic]:
    """Every broken invariant of ``ir`` as a diagnostic (empty when the IR is valid)."""
    g = ir.graph
    out: list[Diagnostic] = []

    def bad(node: str | None, msg: str) -> None:
        span = ir.payload(node).span if node is not None else NOSPAN
        out.append(error("E0400", f"invalid IR: {msg}", span))

    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        bad(cycle[0][0], f"cycle through {', '.join(u for u, _ in cycle)}")
        return out
    inputs = [n for n in g if isinstance(ir.payload(n), Input)]
    outputs = [n for n in g if isinstance(ir.payload(n), Output)]
    if len(inputs) != 1:
        bad(None, f"expected one input node, found {len(inputs)}")
    if len(outputs) != 1:
        bad(None, f"expected one output node, found {len(outputs)}")
    for n in g:
        p = ir.payload(n)
        lo, hi = _ARITY[type(p)]
        idx = sorted(i for _, _, i in g.in_edges(n, data="index"))
        if idx != list(range(len(idx))):
            bad(n, f"operands of %{n} are numbered {idx}")
        if len(idx) < lo or (hi is not None and len(idx) > hi):
            bad(n, f"%{n} ({type(p).__name__}) has {len(idx)} operands")
        if isinstance(p, BankVersion):
            for o in ir.operands(n):
                q = ir.payload(o)
                if isinstance(q, BankVersion) and (q.bank, q.stage) == (p.bank, p.stage):
                    if q.version >= p.version:
                        bad(n, f"%{n} follows a later version %{o}")
    if ir.shapes is not None:
        missing = [n for n in g if n not in ir.shapes]
        if missing:
            bad(missing[0], f"{len(missing)} node(s) have no shape, e.g. %{missing[0]}")
        else:
            from smashc.passes.infer_shapes import derive_shapes

            fresh, problems = derive_shapes(ir)
            out += problems
            for n in g:
                if n in fresh and fresh[n] != ir.shapes[n]:
                    bad(n, f"shape of %{n} is {ir.shapes[n]} but its operands give {fresh[n]}")
    return out


@register("verify", kind="check")
def verify(ir: IRGraph) -> IRGraph:
    problems = check(ir)
    if problems:
        raise SmashError(problems)
    return ir

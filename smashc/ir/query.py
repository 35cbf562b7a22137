"""Read-only questions about an IRGraph that several backends ask: what each layer of a block
reads, writes and computes, and whether two graphs are the same architecture."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
from networkx.algorithms import isomorphism as iso

from smashc import arch
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import BankVersion, OpNode, Slice


@dataclass(frozen=True)
class LayerAccess:
    """One layer as seen in the IR: banks read (concat order), banks written, mode and ops."""

    name: str
    reads: tuple[int, ...]
    writes: tuple[int, ...]
    mode: str
    ops: tuple[arch.Op, ...]
    chunks: tuple[int, ...]  # chunk index written into each bank of ``writes``


def layer_accesses(ir: IRGraph, block: str) -> list[LayerAccess]:
    """The block's layers in program order, reconstructed from the dataflow."""
    info = ir.stage(block)
    members: dict[str, list[str]] = {name: [] for name in info.layers}
    versions: list[str] = []
    for n in ir.stage_nodes(block):
        p = ir.payload(n)
        if isinstance(p, BankVersion):
            versions.append(n)
        elif getattr(p, "layer", None) in members:
            members[p.layer].append(n)
    owner = {n: name for name, nodes in members.items() for n in nodes}
    writes: dict[str, list[tuple[int, int, str]]] = {name: [] for name in info.layers}
    for n in versions:
        q = ir.payload(n)
        srcs = [o for o in ir.operands(n) if o in owner]
        if not srcs:
            continue
        src = ir.payload(srcs[0])
        chunk = src.start // q.width if isinstance(src, Slice) else 0
        # one operand after an all-zero version (x + 0 folded) is still a write
        was_zero = q.version == 1 and q.bank >= info.input_banks
        mode = "write" if len(ir.operands(n)) == 2 or was_zero else "overwrite"
        writes[owner[srcs[0]]].append((q.bank, chunk, mode))
    out = []
    for name in info.layers:
        nodes = members[name]
        if not nodes:
            continue  # removed as dead
        reads: list[int] = []
        for n in nodes:
            for o in ir.operands(n):
                q = ir.payload(o)
                if isinstance(q, BankVersion) and q.stage == block:
                    reads.append(q.bank)
        ops = tuple(ir.payload(n).op for n in nodes if isinstance(ir.payload(n), OpNode))
        ws = writes[name]
        out.append(
            LayerAccess(
                name,
                tuple(reads),
                tuple(b for b, _, _ in ws),
                ws[0][2] if ws else "write",
                ops,
                tuple(c for _, c, _ in ws),
            )
        )
    return out


def _signature(ir: IRGraph, n: str) -> tuple:
    """What a node computes, without its name or source location."""
    p = ir.payload(n)
    if isinstance(p, OpNode):
        return ("op", p.op)
    if isinstance(p, BankVersion):
        return ("bank", p.bank, p.version, p.width)
    if isinstance(p, Slice):
        return ("slice", p.start, p.stop)
    fields = {k: v for k, v in vars(p).items() if k not in ("name", "stage", "layer", "span")}
    return (type(p).__name__, tuple(sorted(fields.items())))


def same_architecture(a: IRGraph, b: IRGraph) -> bool:
    """Graph isomorphism with equal node signatures and equal operand indices."""
    if (a.input, a.classes) != (b.input, b.classes):
        return False
    ga, gb = nx.DiGraph(), nx.DiGraph()
    for ir, g in ((a, ga), (b, gb)):
        for n in ir.graph:
            g.add_node(n, sig=_signature(ir, n))
        for u, v, i in ir.graph.edges(data="index"):
            g.add_edge(u, v, index=i)
    matcher = iso.DiGraphMatcher(
        ga,
        gb,
        node_match=iso.categorical_node_match("sig", None),
        edge_match=iso.categorical_edge_match("index", None),
    )
    return matcher.is_isomorphic()

"""The ``recognize-patterns`` pass: labels each block resnet / densenet / fractalnet / custom.

Pre: any valid IRGraph (normalised or not). Post: the same graph with ``patterns`` mapping
every block name to a Pattern; nothing else changes (recognition is analysis only).

Recognition looks at connectivity, not at the ops: a block's *access graph* has a node per
layer and per non-zero bank version, edges bank-version -> layer for reads, layer ->
bank-version for writes, and previous -> next version where a write adds into a bank.
A family matches when that graph is isomorphic (networkx DiGraphMatcher, matching node
kinds and edge kinds) to the access graph of the family's canonical memory-bank form with
parameters read off the block. Hand-written blocks are recognised like template expansions.
"""

from __future__ import annotations

import networkx as nx
from networkx.algorithms import isomorphism as iso

from smashc import arch
from smashc.ir.graph import IRGraph, Pattern, StageInfo
from smashc.ir.nodes import BankVersion
from smashc.passes.registry import register


def access_graph(ir: IRGraph, block: str) -> nx.DiGraph:
    """Layers and non-zero bank versions of ``block`` with their read/write/accumulate edges."""
    g = nx.DiGraph()
    layer_of = {}
    for n in ir.graph:
        p = ir.payload(n)
        if getattr(p, "stage", None) == block and getattr(p, "layer", None) is not None:
            layer_of[n] = p.layer
    for n in ir.graph:
        p = ir.payload(n)
        if not isinstance(p, BankVersion) or p.stage != block or not ir.operands(n):
            continue
        role = "input" if p.version == 0 else "version"
        g.add_node(("bank", n), kind=role)
        for o in ir.operands(n):
            q = ir.payload(o)
            if isinstance(q, BankVersion) and q.stage == block and ir.operands(o):
                g.add_edge(("bank", o), ("bank", n), kind="accumulate")
            elif o in layer_of:
                g.add_node(("layer", layer_of[o]), kind="layer")
                g.add_edge(("layer", layer_of[o]), ("bank", n), kind="write")
        for user in ir.users(n):
            if user in layer_of:
                g.add_node(("layer", layer_of[user]), kind="layer")
                g.add_edge(("bank", n), ("layer", layer_of[user]), kind="read")
    return _merge_unread_versions(g)


def _merge_unread_versions(g: nx.DiGraph) -> nx.DiGraph:
    """Contracts each bank version that nothing reads into the version that adds to it.

    Additions commute, so writes into a bank between two reads of it form a set, not a
    sequence: after this, the order in which layers add into a join does not matter.
    """
    changed = True
    while changed:
        changed = False
        for u, v, kind in list(g.edges(data="kind")):
            if kind == "accumulate" and g.out_degree(u) == 1:
                merged_kind = (
                    "input" if "input" in (g.nodes[u]["kind"], g.nodes[v]["kind"]) else "version"
                )
                g = nx.contracted_nodes(g, v, u, self_loops=False, copy=True)
                g.nodes[v]["kind"] = merged_kind
                g.nodes[v].pop("contraction", None)
                changed = True
                break
    return g


def _same_shape(a: nx.DiGraph, b: nx.DiGraph) -> bool:
    if a.number_of_nodes() != b.number_of_nodes() or a.number_of_edges() != b.number_of_edges():
        return False
    matcher = iso.DiGraphMatcher(
        a,
        b,
        node_match=iso.categorical_node_match("kind", None),
        edge_match=iso.categorical_edge_match("kind", None),
    )
    return matcher.is_isomorphic()


def _canonical(
    banks: tuple[int, ...], layers: list[tuple[tuple[int, ...], int]], output, inputs: int = 1
) -> nx.DiGraph:
    """Access graph of a block with these banks and (reads, written bank) layers."""
    from smashc.ir.lower import lower

    lays = tuple(
        arch.Layer(f"l{i}", reads, (write,), (arch.Conv(banks[write], (1, 1), padding=(0, 0)),))
        for i, (reads, write) in enumerate(layers)
    )
    blk = arch.Block("b", banks, lays, tuple(output))
    net = arch.Network("canonical", (sum(banks[:inputs]), 1, 1), 1, (blk,))
    return access_graph(lower(net), "b")


def _densenet(info: StageInfo) -> Pattern | None:
    m, n = info.input_banks, len(info.layers)
    if n == 0 or len(info.banks) != m + n or len(set(info.banks[m:])) != 1:
        return None
    layers = [(tuple(range(m + i)), m + i) for i in range(n)]
    return _canonical(info.banks, layers, range(m + n), m), Pattern(
        "densenet", (("depth", n), ("growth", info.banks[m]))
    )


def _fractal(info: StageInfo) -> Pattern | None:
    n = len(info.layers)
    columns = (n + 1).bit_length() - 1
    if columns < 2 or 2**columns - 1 != n or info.input_banks != 1:
        return None
    rows = 2 ** (columns - 1)
    if len(info.banks) != rows + 1 or len(set(info.banks[1:])) != 1:
        return None
    layers = []
    for t in range(rows):
        for c in range(columns):
            span = 2 ** (columns - 1 - c)
            if t % span == 0:
                layers.append(((t,), t + span))
    return _canonical(info.banks, layers, (rows,)), Pattern(
        "fractalnet", (("columns", columns), ("width", info.banks[1]))
    )


def _resnet(ir: IRGraph, info: StageInfo, g: nx.DiGraph) -> Pattern | None:
    """One bank; each residual layer reads the bank and adds back into it.

    Layers that overwrite the bank with a lone activation (post-activation ReLU) are allowed
    between residual layers; depth counts the residual ones.
    """
    if len(info.banks) != 1 or not info.layers:
        return None
    depth = 0
    for layer in info.layers:
        node = ("layer", layer)
        if node not in g:
            return None
        writes = list(g.successors(node))
        reads = list(g.predecessors(node))
        if len(reads) != 1 or len(writes) != 1:
            return None
        if g.has_edge(reads[0], writes[0]):  # adds back into the bank it read
            depth += 1
            continue
        ops = [
            ir.payload(n).op
            for n in ir.graph
            if getattr(ir.payload(n), "layer", None) == layer and hasattr(ir.payload(n), "op")
        ]
        if not (len(ops) == 1 and isinstance(ops[0], arch.Act)):
            return None
    if depth == 0:
        return None
    return Pattern("resnet", (("depth", depth), ("width", info.banks[0])))


def recognize_block(ir: IRGraph, info: StageInfo) -> Pattern:
    g = access_graph(ir, info.name)
    found = _resnet(ir, info, g)
    if found is not None:
        return found
    for candidate in (_densenet, _fractal):
        made = candidate(info)
        if made is not None and _same_shape(g, made[0]):
            return made[1]
    return Pattern("custom", (("layers", len(info.layers)), ("banks", len(info.banks))))


@register("recognize-patterns", kind="analysis", provides=("patterns",))
def recognize_patterns(ir: IRGraph) -> IRGraph:
    return ir.replace(patterns={b.name: recognize_block(ir, b) for b in ir.blocks})

"""The ``recognize-patterns`` pass: labels each block resnet / densenet / fractalnet / custom.

Pre: any valid IRGraph (normalised or not). Post: the same graph with ``patterns`` mapping
every block name to a Pattern; nothing else changes (recognition is analysis only).

Recognition looks at connectivity, not at the ops: a block's *access graph* has a node per
layer and per non-zero bank version, edges bank-version -> layer for reads, layer ->
bank-version for writes, and previous -> next version where a write adds into a bank.
A family matches when that graph is isomorphic (matching node kinds and edge kinds) to
the access graph of the family's canonical memory-bank form with parameters read off the
block. Hand-written blocks are recognised like template expansions.

Each family is tested by its structure, in time linear in the access graph: a ResNet's
layers read a bank and add back into it; a DenseNet's layers, ordered by how many banks
they read, each read every input bank and every bank an earlier layer wrote, and write a
fresh bank. A FractalNet is compared with its canonical graph by networkx's VF2 matcher,
but only up to ``MAX_FRACTAL_COLUMNS`` columns and only once the counts of nodes, edges
and (kind, in-degree, out-degree) agree, so VF2 never runs on a graph it could blow up on.
"""

from __future__ import annotations

from collections import Counter

import networkx as nx
from networkx.algorithms import isomorphism as iso

from smashc import arch
from smashc.ir.graph import IRGraph, Pattern, StageInfo
from smashc.ir.nodes import BankVersion
from smashc.passes.registry import register

MAX_FRACTAL_COLUMNS = 8  # 255 layers (VF2 takes seconds there); beyond, a fractal block is custom


def _stage_nodes(ir: IRGraph) -> dict[str, list[str]]:
    """The IR nodes of each stage (one walk over the graph for every block)."""
    out: dict[str, list[str]] = {}
    for n in ir.graph:
        stage = getattr(ir.payload(n), "stage", None)
        if stage is not None:
            out.setdefault(stage, []).append(n)
    return out


def access_graph(ir: IRGraph, block: str, nodes: list[str] | None = None) -> nx.DiGraph:
    """Layers and non-zero bank versions of ``block`` with their read/write/accumulate edges
    (``nodes``: the block's IR nodes, when the caller already has them). Built in bulk
    from the IR's adjacency: one step per read or write."""
    if nodes is None:
        nodes = _stage_nodes(ir).get(block, [])
    layer_of = {}
    for n in nodes:
        layer = getattr(ir.payload(n), "layer", None)
        if layer is not None:
            layer_of[n] = ("layer", layer)
    kinds: dict[tuple, str] = {}
    edges: list[tuple[tuple, tuple, dict]] = []
    succ = ir.graph._succ
    for n in nodes:
        p = ir.payload(n)
        if not isinstance(p, BankVersion) or not ir.operands(n):
            continue
        me = ("bank", n)
        kinds[me] = "input" if p.version == 0 else "version"
        for o in ir.operands(n):
            q = ir.payload(o)
            if isinstance(q, BankVersion) and q.stage == block and ir.operands(o):
                edges.append((("bank", o), me, {"kind": "accumulate"}))
            elif o in layer_of:
                kinds[layer_of[o]] = "layer"
                edges.append((layer_of[o], me, {"kind": "write"}))
        for user in succ[n]:
            if user in layer_of:
                kinds[layer_of[user]] = "layer"
                edges.append((me, layer_of[user], {"kind": "read"}))
    g = nx.DiGraph()
    g.add_nodes_from((v, {"kind": k}) for v, k in kinds.items())
    g.add_edges_from(edges)
    return _merge_unread_versions(g)


def _merge_unread_versions(g: nx.DiGraph) -> nx.DiGraph:
    """Contracts each bank version that nothing reads into the version that adds to it.

    Additions commute, so writes into a bank between two reads of it form a set, not a
    sequence: after this, the order in which layers add into a join does not matter.

    A version merges when its only out-edge is the accumulate into the next version.
    Contracting never changes another node's out-degree, so the versions that merge are
    known up front and each goes to the end of its chain of such versions: one pass.
    """
    into: dict = {}
    for u in g:
        if g.out_degree(u) == 1:
            (v,) = g.successors(u)
            if g.edges[u, v]["kind"] == "accumulate":
                into[u] = v
    if not into:
        return g

    def target(u):
        while u in into:
            u = into[u]
        return u

    rep = {u: target(u) for u in into}
    out = nx.DiGraph()
    for n, kind in g.nodes(data="kind"):
        r = rep.get(n, n)
        if kind == "input" or out.nodes.get(r, {}).get("kind") == "input":
            out.add_node(r, kind="input")
        elif r not in out:
            out.add_node(r, kind=kind)
    for u, v, kind in g.edges(data="kind"):
        ru, rv = rep.get(u, u), rep.get(v, v)
        if ru != rv:
            out.add_edge(ru, rv, kind=kind)
    return out


def _signature(g: nx.DiGraph) -> Counter:
    return Counter((k, g.in_degree(n), g.out_degree(n)) for n, k in g.nodes(data="kind"))


def _same_shape(a: nx.DiGraph, b: nx.DiGraph) -> bool:
    """Isomorphism matching node and edge kinds: cheap invariants first, then VF2."""
    if a.number_of_nodes() != b.number_of_nodes() or a.number_of_edges() != b.number_of_edges():
        return False
    if _signature(a) != _signature(b):
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


def _densenet(info: StageInfo, g: nx.DiGraph) -> Pattern | None:
    """DenseNet(m input banks, n layers): the access graph is isomorphic to the canonical
    one exactly when, with the layers ordered by how many banks they read, layer i reads
    the m inputs and the banks of layers 0..i-1 and writes a fresh bank. O(edges)."""
    m, n = info.input_banks, len(info.layers)
    if n == 0 or len(info.banks) != m + n or len(set(info.banks[m:])) != 1:
        return None
    kinds = Counter(k for _, k in g.nodes(data="kind"))
    if kinds != Counter({"input": m, "layer": n, "version": n}):  # (a zero count is no key)
        return None
    if g.number_of_edges() != m * n + n + n * (n - 1) // 2:  # reads and writes, nothing else
        return None
    layers = [v for v, k in g.nodes(data="kind") if k == "layer"]
    written = {}
    for layer in layers:
        outs = list(g.successors(layer))
        if len(outs) != 1 or g.nodes[outs[0]]["kind"] != "version" or g.in_degree(outs[0]) != 1:
            return None
        written[layer] = outs[0]
    order = sorted(layers, key=g.in_degree)
    rank = {}
    for i, layer in enumerate(order):
        if g.in_degree(layer) != m + i:
            return None
        rank[written[layer]] = i
    for i, layer in enumerate(order):  # m + i reads, each an input or an earlier layer's bank
        for src in g.predecessors(layer):
            kind = g.nodes[src]["kind"]
            if not (kind == "input" or (kind == "version" and rank[src] < i)):
                return None
    return Pattern("densenet", (("depth", n), ("growth", info.banks[m])))


def _fractal(info: StageInfo) -> Pattern | None:
    n = len(info.layers)
    columns = (n + 1).bit_length() - 1
    if columns < 2 or 2**columns - 1 != n or info.input_banks != 1:
        return None
    if columns > MAX_FRACTAL_COLUMNS:
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


def _resnet(ir: IRGraph, info: StageInfo, g: nx.DiGraph, nodes: list[str]) -> Pattern | None:
    """One bank; each residual layer reads the bank and adds back into it.

    Layers that overwrite the bank with a lone activation (post-activation ReLU) are allowed
    between residual layers; depth counts the residual ones.
    """
    if len(info.banks) != 1 or not info.layers:
        return None
    ops: dict[str, list] = {}
    for n in nodes:
        p = ir.payload(n)
        if getattr(p, "layer", None) is not None and hasattr(p, "op"):
            ops.setdefault(p.layer, []).append(p.op)
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
        own = ops.get(layer, [])
        if not (len(own) == 1 and isinstance(own[0], arch.Act)):
            return None
    if depth == 0:
        return None
    return Pattern("resnet", (("depth", depth), ("width", info.banks[0])))


def recognize_block(ir: IRGraph, info: StageInfo, nodes: list[str] | None = None) -> Pattern:
    if nodes is None:
        nodes = _stage_nodes(ir).get(info.name, [])
    g = access_graph(ir, info.name, nodes)
    found = _resnet(ir, info, g, nodes) or _densenet(info, g)
    if found is not None:
        return found
    made = _fractal(info)
    if made is not None and _same_shape(g, made[0]):
        return made[1]
    return Pattern("custom", (("layers", len(info.layers)), ("banks", len(info.banks))))


@register("recognize-patterns", kind="analysis", provides=("patterns",))
def recognize_patterns(ir: IRGraph) -> IRGraph:
    nodes = _stage_nodes(ir)
    return ir.replace(
        patterns={b.name: recognize_block(ir, b, nodes.get(b.name, [])) for b in ir.blocks}
    )

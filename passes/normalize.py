"""Normalisation passes: each rewrite keeps the network's function exactly.

remove-zero-reads
    Pre: shapes inferred. Post: a layer no longer reads a bank that is still all-zero when the
    read feeds (through zero-preserving activations) a groups=1 conv or a SMASH op; those input
    channels only ever multiplied zeros. Block outputs are left alone.
fold-trivial
    Pre: shapes inferred. Post: no concat or add with one operand, no zero bank version as an
    operand of a later version (x + 0), no slice covering its whole operand; shapes of the
    remaining nodes unchanged.
remove-dead-writes
    Post: every node is an ancestor of the output (layers whose writes nothing reads are gone;
    what a block output uses always reaches the output, so it stays).
canonicalize
    Post: the operands of every commutative add are ordered by node id.
cse
    Post: no two weight-free nodes (activations, pools, gap, chanpad, slice, concat, add) apply
    the same operation to the same operands, except across a layer with weights: its nodes
    merge only among themselves, so every weighted layer still shows what it reads (weight-
    free layers merge freely). Nodes with weights are never merged: two equal convs on the
    same input still have their own weights.
"""

from __future__ import annotations

import networkx as nx

from smashc import arch
from smashc.ir.graph import IRGraph, graph_operands
from smashc.ir.nodes import Add, BankVersion, Concat, OpNode, Output, Slice
from smashc.passes.registry import register

_ZERO_PRESERVING = ("relu", "relu6", "leaky_relu", "identity")


def _is_zero(ir: IRGraph, node: str) -> bool:
    return isinstance(ir.payload(node), BankVersion) and not ir.operands(node)


def _reindex(cow: _CopyOnWrite, node: str, operands: list[str]) -> None:
    """Makes ``operands`` (some of the node's operands) its only operands, in that order."""
    old = cow.current()._pred[node]
    kinds = {src: old[src]["kind"] for src in operands}
    for src in old:
        del cow.succ(src)[node]
    pred = cow.pred(node)
    pred.clear()
    for i, src in enumerate(operands):
        pred[src] = cow.succ(src)[node] = {"index": i, "kind": kinds[src]}


def _bypass(cow: _CopyOnWrite, node: str, replacement: str) -> None:
    """Points every user of ``node`` at ``replacement`` (same operand index) and drops ``node``.

    Skipped when a user already reads ``replacement``: the graph has no parallel edges, so
    such a user would lose an operand.
    """
    g = cow.current()
    users, preds = g._succ[node], g._pred[node]
    if any(u in g._succ[replacement] for u in users):
        return
    moved = cow.succ(replacement)
    for user, data in users.items():
        moved[user] = data
        pred = cow.pred(user)
        del pred[node]
        pred[replacement] = data
    for src in preds:
        del cow.succ(src)[node]
    cow.drop(node)


def _feeds_linear_input(ir: IRGraph, node: str) -> bool:
    """Whether zero channels of ``node`` only ever meet an ungrouped conv or a SMASH op."""
    while True:
        users = ir.users(node)
        if len(users) != 1:
            return False
        p = ir.payload(users[0])
        if not isinstance(p, OpNode):
            return False
        op = p.op
        if isinstance(op, arch.SmashOp) or (isinstance(op, arch.Conv) and op.groups == 1):
            return True
        if not (isinstance(op, arch.Act) and op.kind in _ZERO_PRESERVING):
            return False
        node = users[0]


def _drop_shapes(ir: IRGraph, g: nx.DiGraph) -> dict | None:
    if ir.shapes is None:
        return None
    return {n: s for n, s in ir.shapes.items() if n in g._node}


class _CopyOnWrite:
    """The graph of ``ir``, copied the first time a pass changes it, and then only as far as
    the pass changes it: the maps of nodes, successors and predecessors are copied, and a
    node's own successor or predecessor dict the first time the pass edits it.

    The rewrites edit networkx's adjacency dicts directly (as ``graph.add_node`` does), a
    few times cheaper than its methods, and copy a few dozen of a network's ~300 nodes'
    dicts instead of all: the training loop normalises an architecture every step.
    Attribute dicts are shared with ``ir``'s graph: no pass edits one in place.
    """

    def __init__(self, ir: IRGraph):
        self.ir = ir
        self.copy: nx.DiGraph | None = None
        self._own: set[tuple[str, str]] = set()

    def current(self) -> nx.DiGraph:
        return self.copy if self.copy is not None else self.ir.graph

    @property
    def g(self) -> nx.DiGraph:
        """The copy (made now if not yet), its nodes' own dicts still shared."""
        if self.copy is None:
            old = self.ir.graph
            self.copy = new = old.__class__()
            new.graph.update(old.graph)
            new._node.update(old._node)
            new._succ.update(old._succ)  # _adj is the same dict as _succ
            new._pred.update(old._pred)
        return self.copy

    def succ(self, node: str) -> dict:
        """``node``'s successor dict in the copy, ready to edit."""
        return self._own_dict("_succ", node)

    def pred(self, node: str) -> dict:
        """``node``'s predecessor dict in the copy, ready to edit."""
        return self._own_dict("_pred", node)

    def drop(self, node: str) -> None:
        """Removes ``node`` from the copy; its edges must be gone from its neighbours."""
        g = self.g
        del g._succ[node], g._pred[node], g._node[node]

    def _own_dict(self, which: str, node: str) -> dict:
        adjacency = getattr(self.g, which)
        if (which, node) not in self._own:
            self._own.add((which, node))
            adjacency[node] = dict(adjacency[node])
        return adjacency[node]


@register("remove-zero-reads", needs=("shapes",), keeps=("shapes",))
def remove_zero_reads(ir: IRGraph) -> IRGraph:
    cow = _CopyOnWrite(ir)
    shapes = dict(ir.shape_map())
    for n in list(ir.nodes()):
        p = ir.payload(n)
        if not isinstance(p, Concat) or p.layer is None:
            continue
        ops = ir.operands(n)
        keep = [o for o in ops if not _is_zero(ir, o)]
        if len(keep) in (0, len(ops)) or not _feeds_linear_input(ir, n):
            continue
        _reindex(cow, n, keep)
        old = shapes[n]
        shapes[n] = type(old)(sum(ir.shape(o).channels for o in keep), old.height, old.width)
        node = n  # activations between the concat and the conv shrink with it
        while not isinstance(ir.payload(ir.users(node)[0]).op, arch.Conv | arch.SmashOp):
            node = ir.users(node)[0]
            shapes[node] = shapes[n]
    return ir if cow.copy is None else ir.with_graph(cow.copy, shapes=shapes)


@register("fold-trivial", needs=("shapes",), keeps=("shapes",))
def fold_trivial(ir: IRGraph) -> IRGraph:
    cow = _CopyOnWrite(ir)
    for n in list(ir.nodes()):
        p = ir.payload(n)
        if isinstance(p, OpNode):
            continue  # the common case, and never folded
        ops = graph_operands(cow.current(), n)
        if isinstance(p, Concat | Add) and len(ops) == 1:
            _bypass(cow, n, ops[0])
        elif isinstance(p, Slice) and p.start == 0 and ir.shape(ops[0]).channels == p.stop:
            _bypass(cow, n, ops[0])
        elif isinstance(p, BankVersion) and len(ops) == 2 and _is_zero(ir, ops[0]):
            _reindex(cow, n, ops[1:])
    if cow.copy is None:
        return ir
    return ir.with_graph(cow.copy, shapes=_drop_shapes(ir, cow.copy))


@register("remove-dead-writes", keeps=("shapes",))
def remove_dead_writes(ir: IRGraph) -> IRGraph:
    out = next(n for n in ir.graph if isinstance(ir.payload(n), Output))
    live, todo, pred = {out}, [out], ir.graph._pred  # the output's ancestors
    while todo:
        for src in pred[todo.pop()]:
            if src not in live:
                live.add(src)
                todo.append(src)
    if len(live) == len(ir.graph):
        return ir
    cow = _CopyOnWrite(ir)
    for n in ir.graph:
        if n in live:
            continue
        for src in ir.graph._pred[n]:
            if src in live:  # the users of a dead node are dead too
                del cow.succ(src)[n]
        cow.drop(n)
    return ir.with_graph(cow.copy, shapes=_drop_shapes(ir, cow.copy))


@register("canonicalize", keeps=("shapes",))
def canonicalize(ir: IRGraph) -> IRGraph:
    cow = _CopyOnWrite(ir)
    for n in ir.graph:
        if not isinstance(ir.payload(n), Add):
            continue
        ops = graph_operands(ir.graph, n)  # not ir.operands: that indexes every node
        if ops != sorted(ops):
            _reindex(cow, n, sorted(ops))
    return ir if cow.copy is None else ir.with_graph(cow.copy)


def _weight_free(p) -> bool:
    if isinstance(p, Slice | Concat | Add):
        return True
    if isinstance(p, OpNode):
        return isinstance(p.op, arch.Act | arch.Pool | arch.GlobalAvgPool | arch.ChannelPad)
    return False


def _cse_key(ir: IRGraph, g: nx.DiGraph, n: str):
    p = ir.payload(n)
    if isinstance(p, OpNode):
        what = p.op
    elif isinstance(p, Slice):
        what = ("slice", p.start, p.stop)
    else:
        what = type(p).__name__
    return (what, tuple(graph_operands(g, n)))


@register("cse", keeps=("shapes",))
def cse(ir: IRGraph) -> IRGraph:
    # Nodes of a layer with weights only merge with nodes of the same layer, so every
    # weighted layer keeps its own reads; weight-free layers may merge with each other.
    weighted = {
        p.layer
        for n in ir.graph
        if isinstance(p := ir.payload(n), OpNode) and p.layer is not None and not _weight_free(p)
    }
    cow = _CopyOnWrite(ir)
    seen: dict = {}
    for n in list(ir.nodes()):
        p = ir.payload(n)
        if not _weight_free(p):
            continue
        layer = getattr(p, "layer", None)
        key = (_cse_key(ir, cow.current(), n), layer if layer in weighted else None)
        if key in seen:
            _bypass(cow, n, seen[key])
        else:
            seen[key] = n
    if cow.copy is None:
        return ir
    return ir.with_graph(cow.copy, shapes=_drop_shapes(ir, cow.copy))

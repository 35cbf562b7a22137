"""Structure: the lifted graph cut at its dominators into op sequences and blocks.

Every value through which all paths from the input pass (a dominator of the output) cuts
the network; between two cuts lies a single op or a region. A region whose values all keep
the resolution of its entry is a block (``banks.block_of``): consecutive residual regions
(shape kept, joined by an add), with the lone activations after their adds, make one block.
Other regions are ``sum { ... }`` of op paths; op runs become the stem, transitions and head,
a new transition where the stage-level unit (``Prim.unit``) changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import networkx as nx

from smashc import arch
from smashc.lifting.banks import SPLITS, LBlock, NoBankForm, block_of
from smashc.lifting.ops import Prim

Ids = tuple  # parallel to an op tuple: a primitive id, or for a Sum a tuple of path Ids


class NoForm(Exception):
    """The graph has no memory-bank form; ``prim`` is where (for the module path)."""

    def __init__(self, prim: Prim, message: str):
        super().__init__(message)
        self.prim = prim
        self.message = message


@dataclass(frozen=True)
class OpRun:
    kind: str  # stem, transition or head
    ops: tuple[arch.Op, ...]
    ids: Ids
    paths: tuple[str, ...]


@dataclass(frozen=True)
class BlockPart:
    block: LBlock
    paths: tuple[str, ...]
    entry: tuple[int, int, int]  # the block input's shape
    owners: tuple[str, ...] = ()  # the owners of its ops that have weights


Part = OpRun | BlockPart


class _Graph:
    def __init__(self, prims: Sequence[Prim]):
        self.prims = {p.id: p for p in prims}
        self.order = [p.id for p in prims]
        self.g = nx.DiGraph()
        for p in prims:
            self.g.add_node(p.id)
            for i in p.inputs:
                self.g.add_edge(i, p.id)
        self.users = {n: sorted(self.g.successors(n), key=self.order.index) for n in self.g}

    def cuts(self, entry: str, exit_: str, within: set[str]) -> list[str]:
        sub = self.g.subgraph(within | {entry, exit_})
        idom = nx.immediate_dominators(sub, entry)
        chain = [exit_]
        while chain[-1] != entry:
            chain.append(idom[chain[-1]])
        return chain[::-1]

    def between(self, a: str, b: str, within: set[str]) -> list[str]:
        """Values after ``a`` up to and including ``b``, in graph order."""
        sub = self.g.subgraph(within | {a, b})
        got = (nx.descendants(sub, a) & nx.ancestors(sub, b)) | {b}
        return [n for n in self.order if n in got]


def _sequence(gr: _Graph, entry: str, exit_: str, within: set[str]) -> tuple[tuple, Ids]:
    """Ops computing ``exit_`` from ``entry`` using only ``within``: a chain of ops and
    ``sum { ... }`` of disjoint paths."""
    ops: list[arch.Op] = []
    ids: list = []
    cuts = gr.cuts(entry, exit_, within)
    for a, b in zip(cuts, cuts[1:], strict=False):
        region = gr.between(a, b, within)
        p = gr.prims[b]
        if region == [b] and p.kind == "op":
            ops.append(p.op)
            ids.append(b)
            continue
        if p.kind != "add":
            what = "a concatenation" if p.kind == "cat" else "a branching"
            raise NoForm(p, f"{what} that changes resolution has no memory-bank form")
        paths, path_ids, seen = [], [], set()
        rest = set(region) - {b}
        for o in p.inputs:
            if o == a:
                paths.append((arch.Act("identity"),))
                path_ids.append((None,))
                continue
            own = set(gr.between(a, o, rest))
            if own & seen:
                raise NoForm(p, "paths into this addition share values: not a sum of op paths")
            seen |= own
            sub_ops, sub_ids = _sequence(gr, a, o, own)
            paths.append(sub_ops)
            path_ids.append(sub_ids)
        if seen != rest:
            raise NoForm(p, "values between its cuts feed no path of this addition")
        ops.append(arch.Sum(tuple(paths)))
        ids.append(tuple(path_ids))
    return tuple(ops), tuple(ids)


def _flat(gr: _Graph, entry: str, region: list[str]) -> bool:
    hw = gr.prims[entry].shape[1:]
    return all(gr.prims[n].shape[1:] == hw for n in region)


def _residual(gr: _Graph, entry: str, exit_: str) -> bool:
    return gr.prims[exit_].kind == "add" and gr.prims[exit_].shape == gr.prims[entry].shape


Family = Callable[[LBlock, tuple[int, int, int]], str]


def _best_block(gr: _Graph, entry: str, nodes: list[str], exit_: str, family: Family):
    """The block of the region under the first layering that a family recognises (in
    ``SPLITS`` order), else the unsplit one; with that family."""
    first = None
    for split in SPLITS:
        try:
            b = block_of(gr.prims, gr.users, entry, nodes, exit_, split)
        except NoBankForm:
            continue
        fam = family(b, gr.prims[entry].shape)
        if fam != "custom":
            return b, fam
        first = first or (b, fam)
    if first is None:
        raise NoForm(gr.prims[exit_], "this region has no memory-bank form")
    return first


def parts(
    prims: Sequence[Prim], family: Family, templated: Callable[[LBlock, tuple], bool]
) -> list[Part]:
    """The network as stem / blocks / transitions / head, in order. ``family`` names the
    family a block is recognised as; a region that is also a ``sum`` of op paths is a block
    only where ``templated`` says a template writes it (else it is a transition's sum)."""
    gr = _Graph(prims)
    entry = prims[0].id
    final = gr.prims["output"].inputs[0]
    everything = set(gr.order) - {"output"}
    cuts = gr.cuts(entry, final, everything)
    segs = [(a, b, gr.between(a, b, everything)) for a, b in zip(cuts, cuts[1:], strict=False)]
    out: list[tuple[str, object]] = []  # ("ops", (ops, ids, units)) or ("block", ...)
    i = 0
    while i < len(segs):
        a, b, region = segs[i]
        single = region == [b] and gr.prims[b].kind == "op"
        if single or not _flat(gr, a, region):
            ops, ids = _sequence(gr, a, b, set(region))
            units = tuple(gr.prims[n].unit for n in region)
            out.append(("ops", (ops, ids, units, region)))
            i += 1
            continue
        nodes = list(region)
        if _residual(gr, a, b):  # absorb following residual regions and lone activations
            j = i + 1
            while j < len(segs):
                a2, b2, r2 = segs[j]
                act = r2 == [b2] and isinstance(gr.prims[b2].op, arch.Act)
                prev_add = gr.prims[segs[j - 1][1]].kind == "add"
                if (act and prev_add) or (_flat(gr, a2, r2) and _residual(gr, a2, b2)):
                    nodes += r2
                    j += 1
                    continue
                break
            blk, _ = _best_block(gr, a, nodes, segs[j - 1][1], family)
            out.append(("block", (blk, nodes, gr.prims[a].shape)))
            i = j
            continue
        blk, fam = _best_block(gr, a, nodes, b, family)
        if fam == "custom" or not templated(blk, gr.prims[a].shape):
            try:
                ops, ids = _sequence(gr, a, b, set(region))
                units = tuple(gr.prims[n].unit for n in region)
                out.append(("ops", (ops, ids, units, region)))
                i += 1
                continue
            except NoForm:
                pass
        out.append(("block", (blk, nodes, gr.prims[a].shape)))
        i += 1
    return _stages(gr, out)


def _units(items: list) -> list[tuple[list, list, list]]:
    """Consecutive op items grouped by their stage-level unit."""
    groups: list[tuple[list, list, list]] = []
    last = None
    for ops, ids, units, region in items:
        unit = units[-1] if units else ""
        if groups and unit == last:
            groups[-1][0].extend(ops)
            groups[-1][1].extend(ids)
            groups[-1][2].extend(region)
        else:
            groups.append((list(ops), list(ids), list(region)))
        last = unit
    return groups


def _head_at_pool(gr: _Graph, groups: list) -> list:
    """The last run's groups, its head starting at the global pooling where the module ops
    before the pooling belong to another unit than those after it (a flat module's pooling
    has no unit of its own)."""

    def unit(ids) -> str | None:
        mods = [i for i in ids if isinstance(i, str) and gr.prims[i].module is not None]
        return gr.prims[mods[0]].unit if mods else None

    for g in range(len(groups) - 1, -1, -1):
        ops, ids, region = groups[g]
        k = next((i for i, o in enumerate(ops) if isinstance(o, arch.GlobalAvgPool)), None)
        if k is None:
            continue
        after = ids[k:] + [i for grp in groups[g + 1 :] for i in grp[1]]
        if k and unit(ids[:k][::-1]) == unit(after):
            k = 0  # the whole group is the head's
        cut = region.index(ids[k]) if k else 0
        head = (ops[k:], ids[k:], region[cut:])
        for later in groups[g + 1 :]:
            head = tuple(x + y for x, y in zip(head, later, strict=True))
        before = [(ops[:k], ids[:k], region[:cut])] if k else []
        return groups[:g] + before + [head]
    return groups


def _stages(gr: _Graph, items: list) -> list[Part]:
    result: list[Part] = []
    runs: list[list] = [[]]
    kinds: list[str] = []
    for kind, payload in items:
        if kind == "ops":
            runs[-1].append(payload)
        else:
            kinds.append("block")
            runs.append([])
    blocks = [payload for kind, payload in items if kind == "block"]
    for r, run in enumerate(runs):
        groups = _units(run)
        if r == len(runs) - 1:
            groups = _head_at_pool(gr, groups)
        for g, (ops, ids, region) in enumerate(groups):
            kind = "transition"
            if r == 0 and g == 0:
                kind = "stem"
            if r == len(runs) - 1 and g == len(groups) - 1:
                kind = "head"
            paths = tuple(gr.prims[n].path for n in region)
            result.append(OpRun(kind, tuple(ops), tuple(ids), paths))
        if r < len(blocks):
            blk, nodes, shape = blocks[r]
            paths = tuple(gr.prims[n].path for n in nodes)
            owners = tuple(gr.prims[n].owner for n in nodes if gr.prims[n].module is not None)
            result.append(BlockPart(blk, paths, shape, owners))
    return result

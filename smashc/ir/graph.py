"""IRGraph: a typed wrapper over networkx.DiGraph plus the network's metadata and analyses."""

from __future__ import annotations

import dataclasses
import functools
import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import networkx as nx

from smashc.diagnostics import NOSPAN, Span
from smashc.ir.nodes import Payload, Shape


class MissingAnalysis(ValueError):
    """A pass or backend needs an analysis (e.g. shapes) that no earlier pass computed."""

    def __init__(self, what: str):
        super().__init__(f"{what} are not inferred yet; run the infer-shapes pass first")
        self.what = what


@dataclass(frozen=True)
class StageInfo:
    """One stage of the network in order: a stem, block, transition or head."""

    kind: str  # "stem" | "block" | "transition" | "head"
    name: str
    banks: tuple[int, ...] = ()  # blocks: bank widths
    output: tuple[int, ...] = ()  # blocks: banks concatenated into the block output
    layers: tuple[str, ...] = ()  # blocks: layer names in order
    input_banks: int = 0  # blocks: how many leading banks the block input fills
    template: str | None = None
    span: Span = field(default=NOSPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Pattern:
    """What ``recognize-patterns`` found in a block: a family and its parameters."""

    family: str  # "resnet" | "densenet" | "fractalnet" | "custom"
    params: tuple[tuple[str, int], ...] = ()

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.family}({inner})" if inner else self.family


@dataclass(frozen=True)
class IRGraph:
    """Dataflow graph of one network. Nodes carry a ``payload``; edges carry ``index`` and ``kind``.

    ``index`` orders a node's operands; ``kind`` is "read" (bank version into a layer),
    "write" (layer chunk into a bank version) or "data". Passes never mutate an IRGraph;
    they return a new one (``with_graph`` copies what they change).
    """

    name: str
    input: tuple[int, int, int]
    classes: int
    stages: tuple[StageInfo, ...]
    graph: nx.DiGraph
    shapes: Mapping[str, Shape] | None = None
    patterns: Mapping[str, Pattern] | None = None

    # --- queries
    # The queries read networkx's adjacency dicts (``_node``, ``_succ``, ``_pred``) rather
    # than its views: the passes make thousands of these calls per architecture, and the
    # training loop compiles an architecture per step.
    def payload(self, node: str) -> Payload:
        return self.graph._node[node]["payload"]

    @functools.cached_property
    def _operands(self) -> dict[str, list[str]]:
        return {n: graph_operands(self.graph, n) for n in self.graph._pred}

    def operands(self, node: str) -> list[str]:
        """The node's operands in index order (cached: an IRGraph's graph is never mutated)."""
        return list(self._operands[node])

    def users(self, node: str) -> list[str]:
        return sorted(self.graph._succ[node])

    @functools.cached_property
    def _order(self) -> tuple[str, ...]:
        # Kahn's algorithm with a heap of creation indices: the same order as networkx's
        # lexicographical_topological_sort keyed by creation, several times faster (the
        # training loop compiles an architecture per step).
        names = list(self.graph._node)
        index = {n: i for i, n in enumerate(names)}
        succ = self.graph._succ
        # Lowering creates every node after its operands and the passes only rewire a node
        # to earlier ones, so the creation order is normally topological, and then it is
        # the smallest such order: checking that costs a third of the sort.
        if all(index[m] > i for i, n in enumerate(names) for m in succ[n]):
            return tuple(names)
        indegree = [0] * len(names)
        for n in names:
            for m in succ[n]:
                indegree[index[m]] += 1
        ready = [i for i, d in enumerate(indegree) if d == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(names[i])
            for m in succ[names[i]]:
                j = index[m]
                indegree[j] -= 1
                if indegree[j] == 0:
                    heapq.heappush(ready, j)
        if len(order) != len(names):
            raise nx.NetworkXUnfeasible("the IR graph has a cycle")
        return tuple(order)

    def nodes(self) -> Iterator[str]:
        """Node ids in a deterministic topological order (ties broken by creation order).

        Computed once per IRGraph: passes return new IRGraphs rather than mutate this one.
        """
        return iter(self._order)

    @functools.cached_property
    def _by_stage(self) -> dict[str | None, list[str]]:
        groups: dict[str | None, list[str]] = {}
        for n in self._order:
            groups.setdefault(getattr(self.payload(n), "stage", None), []).append(n)
        return groups

    def stage_nodes(self, name: str) -> list[str]:
        """The nodes of stage ``name`` (whose payload's ``stage`` is it), in ``nodes()`` order."""
        return list(self._by_stage.get(name, ()))

    @functools.cached_property
    def _stages(self) -> dict[str, StageInfo]:
        return {s.name: s for s in self.stages}

    def stage(self, name: str) -> StageInfo:
        return self._stages[name]

    @property
    def blocks(self) -> tuple[StageInfo, ...]:
        return tuple(s for s in self.stages if s.kind == "block")

    def shape_map(self) -> Mapping[str, Shape]:
        if self.shapes is None:
            raise MissingAnalysis("shapes")
        return self.shapes

    def shape(self, node: str) -> Shape:
        if self.shapes is None:
            raise MissingAnalysis("shapes")
        return self.shapes[node]

    # --- derivation
    def with_graph(self, graph: nx.DiGraph, **changes) -> IRGraph:
        return dataclasses.replace(self, graph=graph, **changes)

    def replace(self, **changes) -> IRGraph:
        """A copy with ``changes``; it keeps the queries this one cached about the fields
        that did not change (after infer-shapes, every later pass would otherwise order
        and index the same graph again)."""
        new = dataclasses.replace(self, **changes)
        for name, source in (
            ("_operands", "graph"),
            ("_order", "graph"),
            ("_by_stage", "graph"),
            ("_stages", "stages"),
        ):
            if name in self.__dict__ and source not in changes:
                new.__dict__[name] = self.__dict__[name]
        return new

    def copy_graph(self) -> nx.DiGraph:
        """A copy of the graph to edit (networkx's: new attribute dicts)."""
        return self.graph.copy()


def graph_operands(g: nx.DiGraph, node: str) -> list[str]:
    """Operands of ``node`` in a graph being rewritten (no caching)."""
    preds = g._pred[node]
    return sorted(preds, key=lambda src: preds[src]["index"])


def add_node(g: nx.DiGraph, node: str, payload: Payload, operands: list[str], kind="data") -> str:
    """Adds ``node`` with ``operands`` (nodes already in ``g``) wired in order; returns the id.

    Writes the adjacency dicts as ``add_node`` and ``add_edge`` would, at a third of their
    cost (lowering adds some 600 nodes for each architecture the training loop samples);
    ``tests/test_ir.py`` compares the result with networkx's."""
    if node in g._node:
        raise ValueError(f"duplicate IR node id {node!r}")
    missing = [src for src in operands if src not in g._node]
    if missing:
        raise ValueError(f"IR node {node!r} has operands not in the graph: {missing}")
    g._node[node] = {"payload": payload}
    g._succ[node] = {}  # _adj is the same dict as _succ
    g._pred[node] = pred = {}
    for i, src in enumerate(operands):
        pred[src] = g._succ[src][node] = {"index": i, "kind": kind}
    return node

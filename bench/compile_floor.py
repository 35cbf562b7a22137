"""The floor under compiling an architecture: building its two graphs and nothing else.

    python bench/compile_floor.py [--archs 60] [--json]

The training loop compiles every sampled architecture through the whole pipeline: AST ->
expansion -> networkx IR -> passes -> encoding -> torch.fx graph. Two of those stages are
mostly data-structure construction: lowering builds a networkx graph of the lowered IR, and
the HyperNet backend builds an fx graph. Here both graphs are
rebuilt from parts made beforehand (payloads, operand lists, targets, arguments, names),
so what is timed is only what networkx and torch.fx charge to hold them:

* ``networkx``: the lowered IR's nodes and edges added with ``ir.graph.add_node`` (which
  writes networkx's adjacency dicts directly, a third of ``DiGraph.add_node`` and
  ``add_edge``), payloads already built;
* ``fx``: the backend's fx graph recreated node by node with ``backends.fx.node`` (the
  backend's own helper), arguments already built except for swapping in the new nodes.

Those two times add up to what compiling can never go below while it builds these graphs;
the rest of the pipeline (expansion, six passes, encoding, the runner's plan) comes on top.
Reference-sized work (bottlenecks up to 64), early (progress 0) and late (progress 1)
architectures, garbage collector set as in training; medians over ``--archs``. The full
compile (``runtime.oneshot.compile_arch``) of the same architectures is timed for scale.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

import networkx as nx
from _common import emit, parse, parser
from torch import fx

from smashc.backends import fx as fx_backend
from smashc.backends.hyperfx import SharedWeights
from smashc.ir import IRGraph, lower
from smashc.ir.graph import add_node, graph_operands
from smashc.runtime.oneshot import compile_arch
from smashc.runtime.sampler import Sampler, SearchSpace

SEED = 20000


class _Ref(int):
    """An argument that is the ``int``-th node of the graph being rebuilt."""


def _recipe(graph: fx.Graph) -> list[tuple]:
    """(op, target, args with nodes replaced by ``_Ref``, name) of each node in order."""
    index = {n: i for i, n in enumerate(graph.nodes)}

    def ref(a):
        if isinstance(a, fx.Node):
            return _Ref(index[a])
        if isinstance(a, list | tuple):
            return type(a)(ref(e) for e in a)
        return a

    return [(n.op, n.target, tuple(ref(a) for a in n.args), n.name) for n in graph.nodes]


def rebuild_fx(recipe: list[tuple]) -> fx.Graph:
    graph, made = fx.Graph(), []

    def sub(a):
        if type(a) is _Ref:
            return made[a]
        if isinstance(a, list | tuple):
            return type(a)(sub(e) for e in a)
        return a

    for op, target, args, name in recipe:
        if op == "output":
            made.append(graph.output(sub(args[0])))
        else:
            made.append(fx_backend.node(graph, op, target, [sub(a) for a in args], name))
    return graph


def _parts(ir: IRGraph) -> list[tuple]:
    g = ir.graph
    kind = {n: next((e["kind"] for e in g._pred[n].values()), "data") for n in g._node}
    return [(n, g._node[n]["payload"], graph_operands(g, n), kind[n]) for n in g._node]


def rebuild_nx(parts: list[tuple]) -> nx.DiGraph:
    g = nx.DiGraph()
    for node, payload, operands, kind in parts:  # lowering's creation order is topological
        add_node(g, node, payload, operands, kind)
    return g


def median_ms(fn: Callable, items: Iterable) -> float:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[1:])  # the first one warms up


def run(archs: int, progress: float) -> dict:
    space = SearchSpace(max_bottleneck=1)
    shared = SharedWeights(space.encoding())
    modules = [Sampler(space, seed=SEED + i).sample(progress) for i in range(archs + 1)]
    compiled = [compile_arch(m, shared) for m in modules]
    irs = [lower(m) for m in modules]
    lowered = [_parts(ir) for ir in irs]
    recipes = [_recipe(c.net.graph) for c in compiled]
    # what is timed rebuilds the very graphs compiling makes
    same_fx = rebuild_fx(recipes[0]).python_code("self").src
    assert same_fx == compiled[0].net.graph.python_code("self").src
    assert nx.utils.graphs_equal(rebuild_nx(lowered[0]), irs[0].graph)
    out = {
        "ir_nodes": statistics.median(len(p) for p in lowered),
        "fx_nodes": statistics.median(len(r) for r in recipes),
        "networkx_ms": median_ms(rebuild_nx, lowered),
        "fx_ms": median_ms(rebuild_fx, recipes),
        "compile_ms": median_ms(lambda m: compile_arch(m, shared), modules),
    }
    out["floor_ms"] = out["networkx_ms"] + out["fx_ms"]
    return out


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--archs", type=int, default=60)
    args = parse(ap)
    res = {when: run(args.archs, p) for when, p in (("early", 0.0), ("late", 1.0))}
    for when, r in res.items():
        print(
            f"{when}: {r['ir_nodes']:.0f} IR nodes, {r['fx_nodes']:.0f} fx nodes; building the"
            f" networkx graph {r['networkx_ms']:.2f} ms + the fx graph {r['fx_ms']:.2f} ms"
            f" = floor {r['floor_ms']:.2f} ms; full compile {r['compile_ms']:.2f} ms"
            f" (medians of {args.archs})"
        )
    emit(args, res)


if __name__ == "__main__":
    main()

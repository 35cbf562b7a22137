"""graphviz backend: the memory-bank view (banks as lanes) and the dataflow view of the IR.

Recognised blocks are clusters labelled with their pattern; ``collapse`` draws one node per
block. Rendering needs the Debian ``graphviz`` binary; without it the ``.dot`` is still written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import graphviz

from smashc import arch
from smashc.diagnostics import SmashError, Span, error
from smashc.frontend.flatten import op_call
from smashc.frontend.printer import op_text
from smashc.ir.graph import IRGraph, StageInfo
from smashc.ir.nodes import Add, BankVersion, Concat, Input, OpNode, Output, Slice
from smashc.ops.registry import of

_READ, _WRITE, _LANE = "#1f77b4", "#d62728", "#bbbbbb"
_LARGE = 300  # IR nodes from which the dataflow view trades layout quality for time


def op_label(op: arch.Op) -> str:
    """Short label: the op entry's own (conv and smash: kernel, dilation, groups, channels),
    else its .smash text."""
    label = of(op).label
    return label(op) if label is not None else op_text(op_call(op))


def _stage_label(ir: IRGraph, st: StageInfo) -> str:
    label = f"{st.kind} {st.name}"
    if st.kind == "block" and ir.patterns and st.name in ir.patterns:
        label += f": {ir.patterns[st.name]}"
    return label


def _node_label(ir: IRGraph, n: str) -> str:
    p = ir.payload(n)
    shape = f"\\n{ir.shapes[n]}" if ir.shapes and n in ir.shapes else ""
    match p:
        case OpNode():
            return op_label(p.op) + shape
        case BankVersion():
            return f"bank {p.bank} v{p.version}" + shape
        case Slice():
            return f"[{p.start}:{p.stop}]" + shape
        case Concat():
            return "concat" + shape
        case Add():
            return "+" + shape
        case Input():
            return f"input {p.channels}x{p.height}x{p.width}"
        case Output():
            return "logits"
    return n


def _collapsed(ir: IRGraph, g: graphviz.Digraph) -> None:
    prev = "input"
    g.node("input", f"input {'x'.join(map(str, ir.input))}", shape="oval")
    for st in ir.stages:
        nodes = [n for n in ir.graph if getattr(ir.payload(n), "stage", None) == st.name]
        outs = [n for n in nodes if any(u not in nodes for u in ir.users(n))]
        shape = f"\\n→ {ir.shapes[outs[0]]}" if ir.shapes and outs else ""
        extra = f"\\n{len(st.layers)} layers, {len(st.banks)} banks" if st.kind == "block" else ""
        g.node(
            st.name,
            _stage_label(ir, st) + extra + shape,
            shape="box3d" if st.kind == "block" else "box",
        )
        g.edge(prev, st.name)
        prev = st.name


def dataflow(ir: IRGraph, collapse: bool = False) -> graphviz.Digraph:
    """Every IR node, clustered by stage; ``collapse`` draws each stage as one node."""
    g = graphviz.Digraph(
        ir.name,
        graph_attr={"rankdir": "TB", "fontname": "Helvetica"},
        node_attr={"fontname": "Helvetica", "fontsize": "10", "shape": "box"},
    )
    if collapse:
        _collapsed(ir, g)
        return g
    if len(ir.graph) > _LARGE:
        # one network-simplex pass for ranking and placement instead of running them to
        # convergence: DenseNet-BC (600 nodes) renders in 6 s instead of 92 s, and its
        # layout stays readable (only less centred)
        g.graph_attr.update(nslimit="1", nslimit1="1")
    by_stage: dict[str, list[str]] = {}
    for n in ir.nodes():
        by_stage.setdefault(getattr(ir.payload(n), "stage", ""), []).append(n)
    for st in ir.stages:
        with g.subgraph(name=f"cluster_{st.name}") as c:
            c.attr(label=_stage_label(ir, st), style="rounded", color="#888888")
            for n in by_stage.get(st.name, []):
                p = ir.payload(n)
                shape = "ellipse" if isinstance(p, BankVersion) else "box"
                c.node(n, _node_label(ir, n), shape=shape)
    for n in by_stage.get("", []):
        g.node(n, _node_label(ir, n), shape="oval")
    for u, v, kind in ir.graph.edges(data="kind"):
        color = {"read": _READ, "write": _WRITE}.get(kind, "black")
        g.edge(u, v, color=color)
    return g


def _layer_ops(ir: IRGraph, layer: str) -> list[arch.Op]:
    return [
        ir.payload(n).op
        for n in ir.nodes()
        if isinstance(ir.payload(n), OpNode) and ir.payload(n).layer == layer
    ]


def memory_banks(ir: IRGraph, collapse: bool = False) -> graphviz.Digraph:
    """Blocks as clusters with one lane per bank; layers read (blue) and write (red) lanes."""
    g = graphviz.Digraph(
        ir.name,
        graph_attr={"rankdir": "TB", "fontname": "Helvetica", "newrank": "true"},
        node_attr={"fontname": "Helvetica", "fontsize": "10"},
    )
    if collapse:
        _collapsed(ir, g)
        return g
    prev = "input"
    g.node("input", f"input {'x'.join(map(str, ir.input))}", shape="oval")
    for st in ir.stages:
        if st.kind != "block":
            ops = [
                ir.payload(n).op
                for n in ir.nodes()
                if isinstance(ir.payload(n), OpNode) and ir.payload(n).stage == st.name
            ]
            label = f"{st.kind}\\n" + "\\n".join(op_label(o) for o in ops)
            g.node(st.name, label, shape="box", style="filled", fillcolor="#eeeeee")
            g.edge(prev, st.name)
            prev = st.name
            continue
        versions = [
            n
            for n in ir.nodes()
            if isinstance(ir.payload(n), BankVersion) and ir.payload(n).stage == st.name
        ]
        with g.subgraph(name=f"cluster_{st.name}") as c:
            c.attr(label=_stage_label(ir, st), style="rounded", color="#888888")
            lanes: dict[int, list[str]] = {}
            for n in versions:
                p = ir.payload(n)
                lanes.setdefault(p.bank, []).append(n)
                c.node(
                    n,
                    f"b{p.bank}" if p.version == 0 else f"v{p.version}",
                    shape="circle",
                    width="0.3",
                    fixedsize="true",
                    group=f"{st.name}_bank{p.bank}",
                    style="filled",
                    fillcolor="#ffffff" if ir.operands(n) else "#dddddd",
                )
            for chain in lanes.values():
                for a, b in zip(chain, chain[1:], strict=False):
                    c.edge(a, b, color=_LANE, style="dashed", weight="10", arrowhead="none")
            for layer in st.layers:
                ops = _layer_ops(ir, layer)
                if not ops and not any(
                    getattr(ir.payload(n), "layer", None) == layer for n in ir.graph
                ):
                    continue
                label = f"{layer}\\n" + "\\n".join(op_label(o) for o in ops)
                c.node(f"L__{layer}", label, shape="box", style="rounded")
            for n in versions:
                for o in ir.operands(n):
                    src = getattr(ir.payload(o), "layer", None)
                    if src is not None:
                        c.edge(f"L__{src}", n, color=_WRITE)
                for u in ir.users(n):
                    dst = getattr(ir.payload(u), "layer", None)
                    if dst is not None and getattr(ir.payload(u), "stage", None) == st.name:
                        c.edge(n, f"L__{dst}", color=_READ)
            for n in versions:
                if ir.payload(n).version == 0 and ir.operands(n):
                    g.edge(prev, n, style="dotted")
        out = f"{st.name}__out"
        g.node(out, "concat " + ", ".join(f"b{o}" for o in st.output), shape="box", style="dotted")
        for bank in st.output:
            if lanes.get(bank):
                g.edge(lanes[bank][-1], out, style="dotted")
        prev = out
    g.node("output", "logits", shape="oval")
    g.edge(prev, "output")
    return g


@dataclass
class Diagram:
    """A rendered-on-demand diagram; shows itself as SVG in Jupyter."""

    graph: graphviz.Digraph

    def source(self) -> str:
        return self.graph.source

    def _repr_svg_(self) -> str:
        return self.graph.pipe(format="svg").decode("utf-8")


VIEWS = {"banks": memory_banks, "dataflow": dataflow}


def diagram(ir: IRGraph, view: str = "banks", collapse: bool = False) -> Diagram:
    return Diagram(VIEWS[view](ir, collapse))


def write(d: Diagram, path: str | Path) -> Path:
    """Writes ``path`` (.svg/.png/.pdf/.dot). The .dot is written first, so it survives a
    missing graphviz binary, which raises SmashError saying how to install it."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf", "dot", "gv"):
        span = Span(str(path), 1, 1, 1, 1)
        what = (
            f"unknown diagram format '{path.suffix}'" if fmt else f"'{path}' has no file extension"
        )
        msg = f"{what}; use .svg, .png, .pdf or .dot"
        raise SmashError([error("E0501", msg, span)])
    path.parent.mkdir(parents=True, exist_ok=True)
    dot_path = path if fmt in ("dot", "gv") else path.with_suffix(".dot")
    dot_path.write_text(d.source(), encoding="utf-8")
    if fmt in ("dot", "gv"):
        return path
    if shutil.which("dot") is None:
        span = Span(str(dot_path), 1, 1, 1, 1)
        msg = (
            f"the graphviz 'dot' program is not installed, so {path.name} was not rendered "
            f"(the graph is in {dot_path}); install it with: apt-get install graphviz"
        )
        raise SmashError([error("E0502", msg, span)])
    path.write_bytes(d.graph.pipe(format=fmt))
    return path

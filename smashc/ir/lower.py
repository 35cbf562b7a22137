"""Lowering: arch.Network (memory-bank program) to IRGraph (SSA dataflow over bank versions)."""

from __future__ import annotations

import networkx as nx

from smashc import arch
from smashc.diagnostics import DiagnosticBag
from smashc.frontend.check import seq_channels
from smashc.ir.graph import IRGraph, StageInfo, add_node
from smashc.ir.nodes import Add, BankVersion, Concat, Input, OpNode, Output, Slice
from smashc.ops.registry import op_name


class _Lowerer:
    def __init__(self) -> None:
        self.g = nx.DiGraph()

    def ops(self, ops: tuple[arch.Op, ...], x: str, prefix: str, stage: str, layer: str | None):
        """Chains ``ops`` after value ``x``; node ids are ``prefix.<i><kind>``."""
        for i, op in enumerate(ops):
            if isinstance(op, arch.Sum):
                ends = [
                    self.ops(path, x, f"{prefix}.{i}sum.p{j}", stage, layer)
                    for j, path in enumerate(op.paths)
                ]
                node = op_name(prefix, i, op)
                x = add_node(self.g, node, Add(node, stage, layer, op.span), ends)
            else:
                node = op_name(prefix, i, op)
                x = add_node(self.g, node, OpNode(op, node, stage, layer, op.span), [x])
        return x

    def block(self, b: arch.Block, x: str, cin: int) -> str:
        current: list[str] = []
        versions: list[int] = []
        offset = 0
        for k, width in enumerate(b.banks):
            node = f"{b.name}.bank{k}.v0"
            operands: list[str] = []
            if offset < cin:
                sl = f"{b.name}.in{k}"
                add_node(self.g, sl, Slice(offset, offset + width, sl, b.name, None, b.span), [x])
                operands = [sl]
            offset += width
            payload = BankVersion(b.name, k, 0, width, node, b.span)
            current.append(add_node(self.g, node, payload, operands, kind="write"))
            versions.append(0)
        for lay in b.layers:
            reads = [current[r] for r in lay.reads]
            read = f"{lay.name}.read"
            add_node(self.g, read, Concat(read, b.name, lay.name, lay.span), reads, kind="read")
            y = self.ops(lay.ops, read, lay.name, b.name, lay.name)
            width = b.banks[lay.writes[0]]
            out = _out_channels(lay.ops, sum(b.banks[r] for r in lay.reads))
            chunks = out // width
            chunk_ids = []
            for j in range(chunks):
                if chunks == 1:
                    chunk_ids.append(y)
                    continue
                cid = f"{lay.name}.chunk{j}"
                payload = Slice(j * width, (j + 1) * width, cid, b.name, lay.name, lay.span)
                chunk_ids.append(add_node(self.g, cid, payload, [y]))
            for j, bank in enumerate(lay.writes):
                versions[bank] += 1
                v = versions[bank]
                node = f"{b.name}.bank{bank}.v{v}"
                src = chunk_ids[j % chunks]
                operands = [current[bank], src] if lay.mode == "write" else [src]
                payload = BankVersion(b.name, bank, v, width, node, lay.span)
                current[bank] = add_node(self.g, node, payload, operands, kind="write")
        outs = [current[o] for o in b.output]
        node = f"{b.name}.out"
        return add_node(self.g, node, Concat(node, b.name, None, b.span), outs, kind="read")


def _out_channels(ops: tuple[arch.Op, ...], cin: int) -> int:
    out = seq_channels(ops, cin, DiagnosticBag())
    if out is None:
        raise ValueError("lowering needs a network the front end accepted")
    return out


def lower(net: arch.Network) -> IRGraph:
    """The network as SSA dataflow: one node per op, concat, bank version, chunk and join."""
    lw = _Lowerer()
    c, h, w = net.input
    x = add_node(lw.g, "input", Input(c, h, w, net.span), [])
    channels = c
    stages: list[StageInfo] = []
    for st in net.stages:
        if isinstance(st, arch.Block):
            x = lw.block(st, x, channels)
            layers = tuple(lay.name for lay in st.layers)
            filled = next(k + 1 for k in range(len(st.banks)) if sum(st.banks[: k + 1]) >= channels)
            info = StageInfo(
                "block", st.name, st.banks, st.output, layers, filled, st.template, st.span
            )
            channels = sum(st.banks[o] for o in st.output)
        else:
            x = lw.ops(st.ops, x, st.name, st.name, None)
            channels = _out_channels(st.ops, channels)
            info = StageInfo(st.kind, st.name, span=st.span)
        stages.append(info)
    add_node(lw.g, "output", Output(net.span), [x])
    return IRGraph(net.name, net.input, net.classes, tuple(stages), lw.g)

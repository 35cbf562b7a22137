"""Stable, diff-friendly text form of an IRGraph (`smashc compile --emit ir`)."""

from __future__ import annotations

from smashc.frontend.flatten import op_call
from smashc.frontend.printer import op_text
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import Add, BankVersion, Concat, Input, OpNode, Output, Slice


def node_text(ir: IRGraph, node: str) -> str:
    """``id = what operands`` for one node (no shape)."""
    p = ir.payload(node)
    ops = ", ".join(f"%{o}" for o in ir.operands(node))
    match p:
        case Input():
            what = f"input {p.channels}x{p.height}x{p.width}"
        case Output():
            what = "output"
        case OpNode():
            what = op_text(op_call(p.op))
        case Concat():
            what = "concat"
        case Add():
            what = "add"
        case Slice():
            what = f"slice[{p.start}:{p.stop}]"
        case BankVersion():
            what = f"bank{p.bank}.v{p.version}<{p.width}>"
        case _:
            raise TypeError(f"unknown payload {p!r}")
    return f"%{node} = {what}" + (f" {ops}" if ops else "")


def dump(ir: IRGraph) -> str:
    """Header, then every node in topological order, grouped under its stage."""
    lines = [f"network {ir.name} input {'x'.join(map(str, ir.input))} classes {ir.classes}"]
    current = None
    for node in ir.nodes():
        p = ir.payload(node)
        stage = getattr(p, "stage", None)
        if stage is not None and stage != current:
            current = stage
            info = ir.stage(stage)
            head = f"{info.kind} {info.name}"
            if info.kind == "block":
                head += f" banks={list(info.banks)} output={list(info.output)}"
                if ir.patterns is not None and stage in ir.patterns:
                    head += f" pattern={ir.patterns[stage]}"
            lines.append(head)
        text = node_text(ir, node)
        if ir.shapes is not None and node in ir.shapes:
            text += f" : {ir.shapes[node]}"
        lines.append(("  " if stage is not None else "") + text)
    return "\n".join(lines) + "\n"

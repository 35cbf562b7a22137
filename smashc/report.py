"""Per-block report and whole-network parameter and multiply-accumulate counts of an IRGraph.

Counting rules: conv and linear weights (+ bias), BN affine weight and bias (running
statistics are buffers, not parameters); a SMASH op counts its 1x1 bottleneck conv and
its active grid convs as free weights. MACs are conv and linear multiply-accumulates at
the declared input size (BN, activations, pooling and adds are not counted). Each op's
count is its registry entry's ``cost`` (smashc.ops).
"""

from __future__ import annotations

from dataclasses import dataclass

from smashc import arch
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import OpNode, Shape
from smashc.ops.registry import of


def op_cost(op: arch.Op, x: Shape, y: Shape) -> tuple[int, int]:
    """(parameters, MACs) of one op with input shape ``x`` and output shape ``y``."""
    return of(op).cost(op, x, y)


@dataclass(frozen=True)
class StageRow:
    kind: str
    name: str
    banks: str
    layers: int
    pattern: str
    channels_in: int
    channels_out: int
    resolution: str
    params: int
    macs: int


def _stage_edges(ir: IRGraph, stage: str) -> tuple[Shape, Shape]:
    inside = {n for n in ir.graph if getattr(ir.payload(n), "stage", None) == stage}
    ins = [o for n in inside for o in ir.operands(n) if o not in inside]
    outs = [n for n in inside for u in ir.users(n) if u not in inside]
    return ir.shape(ins[0]), ir.shape(outs[0])


def rows(ir: IRGraph) -> list[StageRow]:
    cost: dict[str, list[int]] = {}
    for n in ir.graph:
        p = ir.payload(n)
        if isinstance(p, OpNode):
            x = ir.shape(ir.operands(n)[0])
            pc, mc = op_cost(p.op, x, ir.shape(n))
            c = cost.setdefault(p.stage, [0, 0])
            c[0] += pc
            c[1] += mc
    out = []
    for st in ir.stages:
        x, y = _stage_edges(ir, st.name)
        pattern = str(ir.patterns[st.name]) if ir.patterns and st.name in ir.patterns else "-"
        if st.kind != "block":
            pattern = "-"
        banks = "-"
        if st.kind == "block":
            banks = f"{len(st.banks)}x" + "/".join(str(w) for w in sorted(set(st.banks)))
        res = f"{x.height}x{x.width}->{y.height}x{y.width}"
        p, m = cost.get(st.name, [0, 0])
        out.append(
            StageRow(
                st.kind, st.name, banks, len(st.layers), pattern, x.channels, y.channels, res, p, m
            )
        )
    return out


def totals(ir: IRGraph) -> tuple[int, int]:
    """(parameters, MACs) of the whole network."""
    rs = rows(ir)
    return sum(r.params for r in rs), sum(r.macs for r in rs)


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def render(ir: IRGraph) -> str:
    """The ``--report`` table: one row per stage, then totals."""
    header = (
        "stage",
        "kind",
        "banks",
        "layers",
        "pattern",
        "ch in",
        "ch out",
        "resolution",
        "params",
        "MACs",
    )
    table = [header] + [
        (
            r.name,
            r.kind,
            r.banks,
            str(r.layers) if r.kind == "block" else "-",
            r.pattern,
            str(r.channels_in),
            str(r.channels_out),
            r.resolution,
            str(r.params),
            str(r.macs),
        )
        for r in rows(ir)
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    p, m = totals(ir)
    lines.append("")
    lines.append(f"network {ir.name}: {p} parameters ({_human(p)}), {m} MACs ({_human(m)})")
    return "\n".join(lines) + "\n"

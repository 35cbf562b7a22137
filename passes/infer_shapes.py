"""The ``infer-shapes`` pass: channels and spatial size of every value, with located errors.

Pre: a verified IRGraph. Post: the same graph with ``shapes`` set for every node; raises
SmashError listing every op that cannot run on its input (kernel larger than the padded
map, groups not dividing channels, adds or concats of mismatched shapes, a bank written
at another resolution, a linear layer on a spatial map, an output that is not classes x 1 x 1).
"""

from __future__ import annotations

from smashc.diagnostics import Diagnostic, SmashError, error
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import Add, BankVersion, Concat, Input, OpNode, Output, Shape, Slice
from smashc.ops.registry import of
from smashc.passes.registry import register


def derive_shapes(ir: IRGraph) -> tuple[dict[str, Shape], list[Diagnostic]]:
    """Shapes of all nodes whose operands have shapes, and the errors found on the way."""
    shapes: dict[str, Shape] = {}
    errs: list[Diagnostic] = []
    # A block's resolution is its input's, even for banks that stay all-zero: the input is
    # the operand from outside the block of one of its nodes (an input slice or bank v0).
    blocks = {b.name for b in ir.blocks}
    block_hw: dict[str, str] = {}
    for n in ir.graph:
        stage = getattr(ir.payload(n), "stage", None)
        if stage in blocks and stage not in block_hw:
            for o in ir.operands(n):
                if getattr(ir.payload(o), "stage", None) != stage:
                    block_hw[stage] = o
                    break
    for n in ir.nodes():
        p = ir.payload(n)
        ins = [shapes.get(o) for o in ir.operands(n)]
        if any(s is None for s in ins):
            continue
        shape: Shape | None = None
        match p:
            case Input():
                shape = Shape(p.channels, p.height, p.width)
            case Output():
                x = ins[0]
                if (x.height, x.width) != (1, 1) or x.channels != ir.classes:
                    msg = f"the network output must be {ir.classes}x1x1, but it is {x}"
                    errs.append(error("E0402", msg, p.span))
                shape = x
            case OpNode():
                shape = of(p.op).shape(p.op, ins[0], errs)  # the op's registry entry
            case Slice():
                x = ins[0]
                shape = Shape(p.stop - p.start, x.height, x.width)
            case Concat():
                sizes = {(s.height, s.width) for s in ins}
                if len(sizes) > 1:
                    shown = ", ".join(str(s) for s in ins)
                    errs.append(error("E0403", f"cannot concatenate maps of sizes {shown}", p.span))
                else:
                    shape = Shape(sum(s.channels for s in ins), *sizes.pop())
            case Add():
                if len(set(ins)) > 1:
                    shown = ", ".join(str(s) for s in ins)
                    errs.append(error("E0404", f"cannot add values of shapes {shown}", p.span))
                else:
                    shape = ins[0]
            case BankVersion():
                src = block_hw.get(p.stage)
                hw = (shapes[src].height, shapes[src].width) if src in shapes else None
                want = Shape(p.width, *hw) if hw else (ins[0] if ins else None)
                for s in ins:
                    if want is not None and s != want:
                        msg = (
                            f"bank {p.bank} of block '{p.stage}' holds {want} values "
                            f"but this layer writes {s}"
                        )
                        errs.append(error("E0405", msg, p.span))
                        want = None
                        break
                shape = want
        if shape is not None:
            shapes[n] = shape
    return shapes, errs


@register("infer-shapes", kind="analysis", provides=("shapes",))
def infer_shapes(ir: IRGraph) -> IRGraph:
    shapes, errs = derive_shapes(ir)
    if errs:
        raise SmashError(errs)
    return ir.replace(shapes=shapes)

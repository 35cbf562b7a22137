"""The ``chanpad`` op: zero channels appended up to ``out`` (ResNet option-A shortcuts)."""

from __future__ import annotations

from smashc import arch
from smashc.diagnostics import Diagnostic, DiagnosticBag, Span
from smashc.frontend import ast
from smashc.ops.common import int_expr, kw, no_cost, no_weights
from smashc.ops.registry import (
    REQUIRED,
    Args,
    Emitter,
    OnnxEmitter,
    OpDef,
    Param,
    Weights,
    register,
)
from smashc.shape import Shape


def build(a: Args, span: Span) -> arch.ChannelPad:
    return arch.ChannelPad(a["out"], span)


def args(op: arch.ChannelPad) -> tuple[ast.Arg, ...]:
    return (kw("out", int_expr(op.out)),)


def channels(op: arch.ChannelPad, cin: int | None, bag: DiagnosticBag) -> int | None:
    if cin is not None and op.out < cin:
        bag.error("E0205", f"chanpad(out={op.out}) cannot shrink {cin} input channels", op.span)
        return None
    return op.out


def shape(op: arch.ChannelPad, x: Shape, errs: list[Diagnostic]) -> Shape | None:
    return Shape(op.out, x.height, x.width)


def lower_fx(e: Emitter, op: arch.ChannelPad, x, cin: int, name: str):
    from torch.nn import functional as F  # noqa: N812

    return e.call(F.pad, [x, (0, 0, 0, 0, 0, op.out - cin)], name)


def lower_onnx(e: OnnxEmitter, op: arch.ChannelPad, x: str, cin: int, name: str) -> str:
    pads = e.ints(f"{name}_pads", [0, 0, 0, 0, 0, op.out - cin, 0, 0])  # begins, then ends
    return e.node("Pad", [x, pads], name)


def run(op: arch.ChannelPad, x, w: Weights):
    from torch.nn import functional as F  # noqa: N812

    return F.pad(x, (0, 0, 0, 0, 0, op.out - x.shape[1]))


CHANPAD = register(
    OpDef(
        name="chanpad",
        payload=arch.ChannelPad,
        params=(Param("out", "pos", REQUIRED),),
        build=build,
        args=args,
        channels=channels,
        shape=shape,
        cost=no_cost,
        fx=lower_fx,
        onnx=lower_onnx,
        weights=no_weights,
        run=run,
        example="chanpad(out=12)",
    )
)

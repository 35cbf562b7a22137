"""The ``linear`` op: a fully connected layer on a 1x1 map (the classifier head)."""

from __future__ import annotations

from smashc import arch
from smashc.diagnostics import Diagnostic, DiagnosticBag, Span, error
from smashc.frontend import ast
from smashc.ops.common import int_expr, kw
from smashc.ops.registry import (
    REQUIRED,
    Args,
    Draw,
    Emitter,
    OnnxEmitter,
    OpDef,
    Param,
    Weights,
    register,
)
from smashc.shape import Shape


def build(a: Args, span: Span) -> arch.Linear:
    return arch.Linear(a["out"], a["bias"], span)


def args(op: arch.Linear) -> tuple[ast.Arg, ...]:
    bias = () if op.bias else (kw("bias", ast.Bool(False)),)
    return (kw("out", int_expr(op.out)), *bias)


def channels(op: arch.Linear, cin: int | None, bag: DiagnosticBag) -> int | None:
    return op.out


def shape(op: arch.Linear, x: Shape, errs: list[Diagnostic]) -> Shape | None:
    if (x.height, x.width) != (1, 1):
        msg = f"linear needs a 1x1 map (use gap first), but gets {x}"
        errs.append(error("E0402", msg, op.span))
        return None
    return Shape(op.out, 1, 1)


def cost(op: arch.Linear, x: Shape, y: Shape) -> tuple[int, int]:
    p = x.channels * op.out
    return p + (op.out if op.bias else 0), p


def lower_fx(e: Emitter, op: arch.Linear, x, cin: int, name: str):
    """A flattened linear; reshaped back to (N, out, 1, 1) unless it is the network output."""
    import torch
    from torch import nn

    x = e.call(torch.flatten, [x, 1], f"{name}_flat")
    y = e.module(name, nn.Linear(cin, op.out, op.bias), x)
    if e.feeds_output:  # the usual head: logits stay (N, classes)
        e.keep_flat(y)
        return y
    return e.method("reshape", [y, (-1, op.out, 1, 1)], f"{name}_4d")


def lower_onnx(e: OnnxEmitter, op: arch.Linear, x: str, cin: int, name: str) -> str:
    """Like the fx lowering: flattened, and (N, out, 1, 1) again unless it is the output."""
    x = e.node("Flatten", [x], f"{name}_flat", axis=1)
    inputs = [x, e.param(name, "weight")] + ([e.param(name, "bias")] if op.bias else [])
    y = e.node("Gemm", inputs, name, transB=1)
    if e.feeds_output:
        e.keep_flat(y)
        return y
    return e.node("Reshape", [y, e.ints(f"{name}_shape", [-1, op.out, 1, 1])], f"{name}_4d")


def weights(op: arch.Linear, cin: int, draw: Draw) -> dict:
    w = {"weight": draw("weight", op.out, cin) / cin**0.5}
    if op.bias:
        w["bias"] = draw("bias", op.out)
    return w


def run(op: arch.Linear, x, w: Weights):
    from torch.nn import functional as F  # noqa: N812

    return F.linear(x.flatten(1), w["weight"], w.get("bias"))[:, :, None, None]


LINEAR = register(
    OpDef(
        name="linear",
        payload=arch.Linear,
        params=(Param("out", "pos", REQUIRED), Param("bias", "bool", True)),
        build=build,
        args=args,
        channels=channels,
        shape=shape,
        cost=cost,
        fx=lower_fx,
        onnx=lower_onnx,
        weights=weights,
        run=run,
        example="gap -> linear(out=6)",
    )
)

"""The ``conv`` op: a 2-d convolution with its own weights."""

from __future__ import annotations

from smashc import arch
from smashc.diagnostics import Diagnostic, DiagnosticBag, Span, error
from smashc.frontend import ast
from smashc.ops.common import conv_cost, groups_ok, int_expr, kw, pair_expr, spatial
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


def build(a: Args, span: Span) -> arch.Conv:
    pad = a["padding"]
    if pad is None:  # "same" padding for the (odd) kernel and dilation
        pad = arch.same_padding(a["kernel"], a["dilation"])
    return arch.Conv(
        a["out"], a["kernel"], a["stride"], pad, a["dilation"], a["groups"], a["bias"], span
    )


def args(op: arch.Conv) -> tuple[ast.Arg, ...]:
    out = [kw("out", int_expr(op.out)), kw("kernel", pair_expr(op.kernel))]
    if op.stride != (1, 1):
        out.append(kw("stride", pair_expr(op.stride)))
    if op.padding != arch.same_padding(op.kernel, op.dilation):
        out.append(kw("padding", pair_expr(op.padding)))
    if op.dilation != (1, 1):
        out.append(kw("dilation", pair_expr(op.dilation)))
    if op.groups != 1:
        out.append(kw("groups", int_expr(op.groups)))
    if op.bias:
        out.append(kw("bias", ast.Bool(True)))
    return tuple(out)


def channels(op: arch.Conv, cin: int | None, bag: DiagnosticBag) -> int | None:
    if cin is None:
        return op.out
    return op.out if groups_ok(bag, "conv", op.groups, cin, op.out, op.span) else None


def shape(op: arch.Conv, x: Shape, errs: list[Diagnostic]) -> Shape | None:
    if x.channels % op.groups or op.out % op.groups:
        msg = f"conv groups={op.groups} does not divide {x.channels} -> {op.out} channels"
        errs.append(error("E0203", msg, op.span))
        return None
    hw = spatial(x, op.kernel, op.stride, op.padding, op.dilation, "conv", errs, op.span)
    return None if hw is None else Shape(op.out, *hw)


def cost(op: arch.Conv, x: Shape, y: Shape) -> tuple[int, int]:
    p, m = conv_cost(x.channels, op.out, op.kernel, op.groups, y)
    return p + (op.out if op.bias else 0), m


def lower_fx(e: Emitter, op: arch.Conv, x, cin: int, name: str):
    from torch import nn

    conv = nn.Conv2d(cin, op.out, op.kernel, op.stride, op.padding, op.dilation, op.groups, op.bias)
    return e.module(name, conv, x)


def lower_onnx(e: OnnxEmitter, op: arch.Conv, x: str, cin: int, name: str) -> str:
    inputs = [x, e.param(name, "weight")] + ([e.param(name, "bias")] if op.bias else [])
    ph, pw = op.padding
    return e.node(
        "Conv",
        inputs,
        name,
        kernel_shape=list(op.kernel),
        strides=list(op.stride),
        pads=[ph, pw, ph, pw],
        dilations=list(op.dilation),
        group=op.groups,
    )


def weights(op: arch.Conv, cin: int, draw: Draw) -> dict:
    kh, kw_ = op.kernel
    fan = cin // op.groups * kh * kw_
    w = {"weight": draw("weight", op.out, cin // op.groups, kh, kw_) / fan**0.5}
    if op.bias:
        w["bias"] = draw("bias", op.out)
    return w


def run(op: arch.Conv, x, w: Weights):
    from torch.nn import functional as F  # noqa: N812

    return F.conv2d(x, w["weight"], w.get("bias"), op.stride, op.padding, op.dilation, op.groups)


def label(op: arch.Conv) -> str:
    parts = [f"conv {op.kernel[0]}x{op.kernel[1]}"]
    if op.stride != (1, 1):
        parts.append(f"s{op.stride[0]}")
    if op.dilation != (1, 1):
        parts.append(f"d{op.dilation[0]}x{op.dilation[1]}")
    if op.groups != 1:
        parts.append(f"g{op.groups}")
    return " ".join(parts) + f" → {op.out}"


CONV = register(
    OpDef(
        name="conv",
        payload=arch.Conv,
        params=(
            Param("out", "pos", REQUIRED),
            Param("kernel", "odd", 3),
            Param("stride", "pospair", 1),
            Param("padding", "nonnegpair", None),
            Param("dilation", "pospair", 1),
            Param("groups", "pos", 1),
            Param("bias", "bool", False),
        ),
        build=build,
        args=args,
        channels=channels,
        shape=shape,
        cost=cost,
        fx=lower_fx,
        onnx=lower_onnx,
        weights=weights,
        run=run,
        label=label,
        example="conv(out=6, kernel=(3, 5), stride=2, dilation=(1, 2), groups=2, bias=true)",
    )
)

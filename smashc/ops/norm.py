"""The ``bn`` op: batch normalisation with affine weights and running statistics."""

from __future__ import annotations

from smashc import arch
from smashc.diagnostics import Span
from smashc.frontend import ast
from smashc.ops.common import float_expr, kw, same_channels, same_shape
from smashc.ops.registry import Args, Draw, Emitter, OnnxEmitter, OpDef, Param, Weights, register
from smashc.shape import Shape


def build(a: Args, span: Span) -> arch.BatchNorm:
    return arch.BatchNorm(a["eps"], a["momentum"], span)


def args(op: arch.BatchNorm) -> tuple[ast.Arg, ...]:
    out = []
    if op.eps != 1e-5:
        out.append(kw("eps", float_expr(op.eps)))
    if op.momentum != 0.1:
        out.append(kw("momentum", float_expr(op.momentum)))
    return tuple(out)


def cost(op: arch.BatchNorm, x: Shape, y: Shape) -> tuple[int, int]:
    return 2 * x.channels, 0  # running statistics are buffers, not parameters


def lower_fx(e: Emitter, op: arch.BatchNorm, x, cin: int, name: str):
    from torch import nn

    return e.module(name, nn.BatchNorm2d(cin, op.eps, op.momentum), x)


def lower_onnx(e: OnnxEmitter, op: arch.BatchNorm, x: str, cin: int, name: str) -> str:
    keys = ("weight", "bias", "running_mean", "running_var")
    inputs = [x, *(e.param(name, k) for k in keys)]
    return e.node("BatchNormalization", inputs, name, epsilon=op.eps)


def weights(op: arch.BatchNorm, cin: int, draw: Draw) -> dict:
    return {
        "weight": 1 + 0.1 * draw("weight", cin),
        "bias": 0.1 * draw("bias", cin),
        "running_mean": 0.1 * draw("mean", cin),
        "running_var": 1 + 0.1 * draw("var", cin).abs(),
    }


def run(op: arch.BatchNorm, x, w: Weights):
    """Inference-mode normalisation with the running statistics."""
    from torch.nn import functional as F  # noqa: N812

    return F.batch_norm(
        x, w["running_mean"], w["running_var"], w["weight"], w["bias"], False, 0.0, op.eps
    )


BN = register(
    OpDef(
        name="bn",
        payload=arch.BatchNorm,
        params=(Param("eps", "posfloat", 1e-5), Param("momentum", "unitfloat", 0.1)),
        build=build,
        args=args,
        channels=same_channels,
        shape=same_shape,
        cost=cost,
        fx=lower_fx,
        onnx=lower_onnx,
        weights=weights,
        run=run,
        example="bn(eps=0.001, momentum=0.2)",
    )
)

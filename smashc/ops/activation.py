"""The activation ops ``relu``, ``relu6``, ``identity`` and ``leaky_relu`` (payload arch.Act).

``activation`` and ``eager_activation`` are shared with the SMASH op, whose grid convs take
an activation by name.
"""

from __future__ import annotations

from smashc import arch
from smashc.diagnostics import Span
from smashc.frontend import ast
from smashc.ops.common import (
    float_expr,
    kw,
    no_args,
    no_cost,
    no_weights,
    same_channels,
    same_shape,
)
from smashc.ops.registry import Args, Emitter, OnnxEmitter, OpDef, Param, Weights, register


def eager_activation(kind: str, slope: float, x):
    """The reference interpreter's activation ``kind`` (an ``arch.ACTIVATIONS`` name)."""
    from torch.nn import functional as F  # noqa: N812

    if kind == "relu":
        return F.relu(x)
    if kind == "relu6":
        return F.relu6(x)
    if kind == "leaky_relu":
        return F.leaky_relu(x, slope)
    return x


def lower_fx(e: Emitter, op: arch.Act, x, cin: int, name: str):
    return e.act(op.kind, op.slope, x, name)


def lower_onnx(e: OnnxEmitter, op: arch.Act, x: str, cin: int, name: str) -> str:
    return e.act(op.kind, op.slope, x, name)


def run(op: arch.Act, x, w: Weights):
    return eager_activation(op.kind, op.slope, x)


def _plain(kind: str) -> OpDef:
    def build(a: Args, span: Span) -> arch.Act:
        return arch.Act(kind, 0.01, span)

    return OpDef(
        name=kind,
        payload=arch.Act,
        params=(),
        build=build,
        args=no_args,
        channels=same_channels,
        shape=same_shape,
        cost=no_cost,
        fx=lower_fx,
        onnx=lower_onnx,
        weights=no_weights,
        run=run,
        selector=("kind", kind),
        example=kind,
    )


def _leaky_args(op: arch.Act) -> tuple[ast.Arg, ...]:
    return () if op.slope == 0.01 else (kw("slope", float_expr(op.slope)),)


RELU = register(_plain("relu"))
RELU6 = register(_plain("relu6"))
IDENTITY = register(_plain("identity"))
LEAKY_RELU = register(
    OpDef(
        name="leaky_relu",
        payload=arch.Act,
        params=(Param("slope", "float", 0.01),),
        build=lambda a, span: arch.Act("leaky_relu", a["slope"], span),
        args=_leaky_args,
        channels=same_channels,
        shape=same_shape,
        cost=no_cost,
        fx=lower_fx,
        onnx=lower_onnx,
        weights=no_weights,
        run=run,
        selector=("kind", "leaky_relu"),
        example="leaky_relu(slope=0.2)",
    )
)

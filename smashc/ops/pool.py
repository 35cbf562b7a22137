"""The pooling ops ``avgpool`` and ``maxpool`` (payload arch.Pool) and ``gap``."""

from __future__ import annotations

from smashc import arch
from smashc.diagnostics import Diagnostic, Span, error
from smashc.frontend import ast
from smashc.ops.common import (
    kw,
    no_args,
    no_cost,
    no_weights,
    pair_expr,
    same_channels,
    spatial,
)
from smashc.ops.registry import Args, Emitter, OnnxEmitter, OpDef, Param, Weights, register
from smashc.shape import Shape


def _args(op: arch.Pool) -> tuple[ast.Arg, ...]:
    out = [kw("kernel", pair_expr(op.kernel))]
    if op.stride != op.kernel:
        out.append(kw("stride", pair_expr(op.stride)))
    if op.padding != (0, 0):
        out.append(kw("padding", pair_expr(op.padding)))
    return tuple(out)


def _shape(op: arch.Pool, x: Shape, errs: list[Diagnostic]) -> Shape | None:
    if any(2 * p > k for p, k in zip(op.padding, op.kernel, strict=True)):
        msg = f"{op.kind}pool padding {op.padding} exceeds half its kernel {op.kernel}"
        errs.append(error("E0401", msg, op.span))
        return None
    what = f"{op.kind}pool"
    hw = spatial(x, op.kernel, op.stride, op.padding, (1, 1), what, errs, op.span)
    return None if hw is None else Shape(x.channels, *hw)


def _avg_fx(e: Emitter, op: arch.Pool, x, cin: int, name: str):
    from torch.nn import functional as F  # noqa: N812

    return e.call(F.avg_pool2d, [x, op.kernel, op.stride, op.padding], name)


def _max_fx(e: Emitter, op: arch.Pool, x, cin: int, name: str):
    from torch.nn import functional as F  # noqa: N812

    return e.call(F.max_pool2d, [x, op.kernel, op.stride, op.padding], name)


def _pool_onnx(op_type: str, **extra):
    def lower_onnx(e: OnnxEmitter, op: arch.Pool, x: str, cin: int, name: str) -> str:
        ph, pw = op.padding
        attrs = dict(kernel_shape=list(op.kernel), strides=list(op.stride), pads=[ph, pw, ph, pw])
        return e.node(op_type, [x], name, **attrs, **extra)

    return lower_onnx


def _avg_run(op: arch.Pool, x, w: Weights):
    from torch.nn import functional as F  # noqa: N812

    return F.avg_pool2d(x, op.kernel, op.stride, op.padding)


def _max_run(op: arch.Pool, x, w: Weights):
    from torch.nn import functional as F  # noqa: N812

    return F.max_pool2d(x, op.kernel, op.stride, op.padding)


def _pool(kind: str, lower_fx, lower_onnx, run) -> OpDef:
    def build(a: Args, span: Span) -> arch.Pool:
        stride = a["stride"] if a["stride"] is not None else a["kernel"]
        return arch.Pool(kind, a["kernel"], stride, a["padding"], span)

    return OpDef(
        name=f"{kind}pool",
        payload=arch.Pool,
        params=(
            Param("kernel", "pospair", 2),
            Param("stride", "pospair", None),
            Param("padding", "nonnegpair", 0),
        ),
        build=build,
        args=_args,
        channels=same_channels,
        shape=_shape,
        cost=no_cost,
        fx=lower_fx,
        onnx=lower_onnx,
        weights=no_weights,
        run=run,
        selector=("kind", kind),
        example=f"{kind}pool(kernel=3, stride=2, padding=1)",
    )


def _gap_fx(e: Emitter, op: arch.GlobalAvgPool, x, cin: int, name: str):
    from torch.nn import functional as F  # noqa: N812

    return e.call(F.adaptive_avg_pool2d, [x, 1], name)


def _gap_run(op: arch.GlobalAvgPool, x, w: Weights):
    return x.mean(dim=(2, 3), keepdim=True)


AVGPOOL = register(_pool("avg", _avg_fx, _pool_onnx("AveragePool", count_include_pad=1), _avg_run))
MAXPOOL = register(_pool("max", _max_fx, _pool_onnx("MaxPool"), _max_run))
GAP = register(
    OpDef(
        name="gap",
        payload=arch.GlobalAvgPool,
        params=(),
        build=lambda a, span: arch.GlobalAvgPool(span),
        args=no_args,
        channels=same_channels,
        shape=lambda op, x, errs: Shape(x.channels, 1, 1),
        cost=no_cost,
        fx=_gap_fx,
        onnx=lambda e, op, x, cin, name: e.node("GlobalAveragePool", [x], name),
        weights=no_weights,
        run=_gap_run,
        example="gap",
    )
)

"""The ``smash`` op: a 1x1 bottleneck conv, ReLU, and a 2x2 grid of convs (payload arch.SmashOp).

Its grid convs are written ``conv(kernel=..., dilation=..., groups=..., act=...)`` as its
``c0``..``c3`` arguments (the ``sconv`` argument kind, parameters ``CONV_PARAMS``); the
front end builds those into ``arch.SmashConv`` itself.
"""

from __future__ import annotations

from smashc import arch
from smashc.diagnostics import Diagnostic, DiagnosticBag, Span, error
from smashc.frontend import ast
from smashc.ops.activation import eager_activation
from smashc.ops.common import conv_cost, groups_ok, int_expr, kw, pair_expr
from smashc.ops.registry import (
    REQUIRED,
    ArgError,
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

# The parameters of a grid conv (only valid as a smash op's c0..c3 arguments).
CONV_PARAMS: tuple[Param, ...] = (
    Param("kernel", "odd", 3),
    Param("dilation", "pospair", 1),
    Param("groups", "pos", 1),
    Param("act", "act", "relu"),
)


def build(a: Args, span: Span) -> arch.SmashOp:
    convs = [a[f"c{i}"] for i in range(4)]
    if all(c is None for c in convs):
        convs[0] = arch.SmashConv(span=span)
    for later, first in ((1, 0), (3, 2)):
        if convs[later] is not None and convs[first] is None:
            msg = f"smash conv c{later} follows c{first}, so it needs c{first}"
            raise ArgError("E0104", msg, convs[later].span)
    if convs[0] is None:
        raise ArgError("E0104", "a smash op needs c0 (c2 alone is c0 by symmetry)", span)
    bottleneck = a["bottleneck"] if a["bottleneck"] is not None else 4 * a["out"]
    return arch.SmashOp(a["out"], bottleneck, tuple(convs), span)  # type: ignore[arg-type]


def _conv_call(c: arch.SmashConv) -> ast.Call:
    out = [kw("kernel", pair_expr(c.kernel))]
    if c.dilation != (1, 1):
        out.append(kw("dilation", pair_expr(c.dilation)))
    if c.groups != 1:
        out.append(kw("groups", int_expr(c.groups)))
    if c.act != "relu":
        out.append(kw("act", ast.Name(c.act)))
    return ast.Call("conv", tuple(out))


def args(op: arch.SmashOp) -> tuple[ast.Arg, ...]:
    out = [kw("out", int_expr(op.out)), kw("bottleneck", int_expr(op.bottleneck))]
    out += [kw(f"c{i}", _conv_call(c)) for i, c in enumerate(op.convs) if c is not None]
    return tuple(out)


def channels(op: arch.SmashOp, cin: int | None, bag: DiagnosticBag) -> int | None:
    ok = True
    for pos, conv in enumerate(op.convs):
        if conv is not None:
            what = f"smash conv c{pos}"
            ok &= groups_ok(bag, what, conv.groups, op.conv_in(pos), op.out, conv.span)
    return op.out if ok else None


def shape(op: arch.SmashOp, x: Shape, errs: list[Diagnostic]) -> Shape | None:
    for pos, conv in enumerate(op.convs):
        if conv is None:
            continue
        cin = op.conv_in(pos)
        if cin % conv.groups or op.out % conv.groups:
            msg = f"smash conv c{pos} groups={conv.groups} does not divide {cin} -> {op.out}"
            errs.append(error("E0203", msg, conv.span))
            return None
    return Shape(op.out, x.height, x.width)


def cost(op: arch.SmashOp, x: Shape, y: Shape) -> tuple[int, int]:
    """The bottleneck and every active grid conv, counted as free weights."""
    params, macs = conv_cost(x.channels, op.bottleneck, (1, 1), 1, y)
    for pos, c in enumerate(op.convs):
        if c is not None:
            p, m = conv_cost(op.conv_in(pos), op.out, c.kernel, c.groups, y)
            params, macs = params + p, macs + m
    return params, macs


def lower_fx(e: Emitter, op: arch.SmashOp, x, cin: int, name: str):
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    b = e.module(f"{name}_w1x1", nn.Conv2d(cin, op.bottleneck, 1, bias=False), x)
    b = e.call(F.relu, [b], f"{name}_bottleneck")

    def conv(pos: int, c: arch.SmashConv, y):
        pad = arch.same_padding(c.kernel, c.dilation)
        mod = nn.Conv2d(op.conv_in(pos), op.out, c.kernel, 1, pad, c.dilation, c.groups, bias=False)
        return e.module(f"{name}_c{pos}", mod, y)

    return e.grid(op, b, name, conv)


def lower_onnx(e: OnnxEmitter, op: arch.SmashOp, x: str, cin: int, name: str) -> str:
    """The fx lowering's graph: bottleneck conv, ReLU, each chain's activations and convs."""
    b = e.node("Conv", [x, e.param(f"{name}_w1x1", "weight")], f"{name}_w1x1", kernel_shape=[1, 1])
    b = e.node("Relu", [b], f"{name}_bottleneck")
    total = None
    for chain in op.paths():
        y = b
        for pos, c in chain:
            if not (c.act == "relu" and pos in (0, 2)):  # the bottleneck is already ReLU'd
                y = e.act(c.act, 0.01, y, f"{name}_c{pos}_{c.act}")
            ph, pw = arch.same_padding(c.kernel, c.dilation)
            y = e.node(
                "Conv",
                [y, e.param(f"{name}_c{pos}", "weight")],
                f"{name}_c{pos}",
                kernel_shape=list(c.kernel),
                pads=[ph, pw, ph, pw],
                dilations=list(c.dilation),
                group=c.groups,
            )
        total = y if total is None else e.node("Add", [total, y], f"{name}_sum{pos}")
    assert total is not None, "a smash op has at least c0"
    return total


def weights(op: arch.SmashOp, cin: int, draw: Draw) -> dict:
    w = {"w1x1": draw("w1x1", op.bottleneck, cin, 1, 1) / cin**0.5}
    for pos, c in enumerate(op.convs):
        if c is not None:
            cpos = op.conv_in(pos)
            fan = cpos // c.groups * c.kernel[0] * c.kernel[1]
            w[f"c{pos}"] = draw(f"c{pos}", op.out, cpos // c.groups, *c.kernel) / fan**0.5
    return w


def run(op: arch.SmashOp, x, w: Weights):
    """Bottleneck, ReLU, then each chain's activation-and-conv steps, chains summed."""
    from torch.nn import functional as F  # noqa: N812

    b = F.relu(F.conv2d(x, w["w1x1"]))
    total = None
    for chain in op.paths():
        y = b
        for pos, c in chain:
            pad = arch.same_padding(c.kernel, c.dilation)
            y = eager_activation(c.act, 0.01, y)
            y = F.conv2d(y, w[f"c{pos}"], None, 1, pad, c.dilation, c.groups)
        total = y if total is None else total + y
    return total


def label(op: arch.SmashOp) -> str:
    lines = [f"smash 1x1 → {op.bottleneck} → {op.out}"]
    for pos, c in enumerate(op.convs):
        if c is not None:
            extra = f" d{c.dilation[0]}x{c.dilation[1]}" if c.dilation != (1, 1) else ""
            extra += f" g{c.groups}" if c.groups != 1 else ""
            lines.append(f"c{pos}: {c.kernel[0]}x{c.kernel[1]}{extra}")
    return "\\n".join(lines)


SMASH = register(
    OpDef(
        name="smash",
        payload=arch.SmashOp,
        params=(
            Param("out", "pos", REQUIRED),
            Param("bottleneck", "pos", None),
            Param("c0", "sconv", None),
            Param("c1", "sconv", None),
            Param("c2", "sconv", None),
            Param("c3", "sconv", None),
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
        example=(
            "smash(out=4, bottleneck=8, c0=conv(kernel=3, dilation=2),"
            " c1=conv(kernel=5, act=relu6), c2=conv(kernel=1, groups=2, act=identity),"
            " c3=conv(kernel=(1, 3), act=leaky_relu))"
        ),
    )
)

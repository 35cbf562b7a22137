"""Expanded architecture back to AST: a template-free .smash program for any arch.Network.

``expand(load(print(to_module(net)))) == net`` for every network the front end accepts,
which is how sampled or decoded architectures become readable, editable .smash files.
"""

from __future__ import annotations

from smashc import arch
from smashc.frontend import ast


def _int(v: int) -> ast.Expr:
    return ast.Int(v) if v >= 0 else ast.UnaryOp("-", ast.Int(-v))


def _pair(p: arch.Pair) -> ast.Expr:
    return _int(p[0]) if p[0] == p[1] else ast.Tuple((_int(p[0]), _int(p[1])))


def _kw(name: str, value: ast.Expr) -> ast.Arg:
    return ast.Arg(name, value)


def _float(v: float) -> ast.Expr:
    return ast.Float(v) if v >= 0 else ast.UnaryOp("-", ast.Float(-v))


def _smash_conv(c: arch.SmashConv) -> ast.Call:
    args = [_kw("kernel", _pair(c.kernel))]
    if c.dilation != (1, 1):
        args.append(_kw("dilation", _pair(c.dilation)))
    if c.groups != 1:
        args.append(_kw("groups", _int(c.groups)))
    if c.act != "relu":
        args.append(_kw("act", ast.Name(c.act)))
    return ast.Call("conv", tuple(args))


def op_call(op: arch.Op) -> ast.Call | ast.Sum:
    """The shortest call that expands back to ``op`` (defaults left out)."""
    match op:
        case arch.Conv():
            args = [_kw("out", _int(op.out)), _kw("kernel", _pair(op.kernel))]
            if op.stride != (1, 1):
                args.append(_kw("stride", _pair(op.stride)))
            if op.padding != arch.same_padding(op.kernel, op.dilation):
                args.append(_kw("padding", _pair(op.padding)))
            if op.dilation != (1, 1):
                args.append(_kw("dilation", _pair(op.dilation)))
            if op.groups != 1:
                args.append(_kw("groups", _int(op.groups)))
            if op.bias:
                args.append(_kw("bias", ast.Bool(True)))
            return ast.Call("conv", tuple(args))
        case arch.BatchNorm():
            args = []
            if op.eps != 1e-5:
                args.append(_kw("eps", _float(op.eps)))
            if op.momentum != 0.1:
                args.append(_kw("momentum", _float(op.momentum)))
            return ast.Call("bn", tuple(args))
        case arch.Act(kind="leaky_relu"):
            slope = () if op.slope == 0.01 else (_kw("slope", _float(op.slope)),)
            return ast.Call("leaky_relu", slope)
        case arch.Act():
            return ast.Call(op.kind)
        case arch.Pool():
            args = [_kw("kernel", _pair(op.kernel))]
            if op.stride != op.kernel:
                args.append(_kw("stride", _pair(op.stride)))
            if op.padding != (0, 0):
                args.append(_kw("padding", _pair(op.padding)))
            return ast.Call(f"{op.kind}pool", tuple(args))
        case arch.GlobalAvgPool():
            return ast.Call("gap")
        case arch.Linear():
            bias = () if op.bias else (_kw("bias", ast.Bool(False)),)
            return ast.Call("linear", (_kw("out", _int(op.out)), *bias))
        case arch.ChannelPad():
            return ast.Call("chanpad", (_kw("out", _int(op.out)),))
        case arch.SmashOp():
            args = [_kw("out", _int(op.out)), _kw("bottleneck", _int(op.bottleneck))]
            args += [_kw(f"c{i}", _smash_conv(c)) for i, c in enumerate(op.convs) if c is not None]
            return ast.Call("smash", tuple(args))
        case arch.Sum():
            return ast.Sum(tuple(seq(p) for p in op.paths))
    raise TypeError(f"not an op: {op!r}")


def seq(ops: tuple[arch.Op, ...]) -> ast.Seq:
    return ast.Seq(tuple(op_call(o) for o in ops))


def bank_refs(banks: tuple[int, ...]) -> tuple[ast.BankRef, ...]:
    """Runs of three or more consecutive banks become half-open ranges."""
    refs: list[ast.BankRef] = []
    i = 0
    while i < len(banks):
        j = i
        while j + 1 < len(banks) and banks[j + 1] == banks[j] + 1:
            j += 1
        if j - i >= 2:
            refs.append(ast.BankRef(_int(banks[i]), _int(banks[j] + 1)))
            i = j + 1
        else:
            refs.append(ast.BankRef(_int(banks[i])))
            i += 1
    return tuple(refs)


def block(b: arch.Block) -> ast.Block:
    groups: list[ast.BankGroup] = []
    i = 0
    while i < len(b.banks):
        j = i
        while j < len(b.banks) and b.banks[j] == b.banks[i]:
            j += 1
        groups.append(ast.BankGroup(_int(j - i), _int(b.banks[i])))
        i = j
    body: list[ast.Stmt] = [ast.Banks(tuple(groups))]
    body += [
        ast.Layer(lay.name, bank_refs(lay.reads), lay.mode, bank_refs(lay.writes), seq(lay.ops))
        for lay in b.layers
    ]
    if b.output != tuple(range(len(b.banks))):
        body.append(ast.Output(bank_refs(b.output)))
    return ast.Block(b.name, tuple(body))


def to_module(net: arch.Network) -> ast.Module:
    """A one-network module whose expansion is ``net``."""
    c, h, w = net.input
    body: list[ast.Stmt] = [ast.Input(_int(c), _int(h), _int(w)), ast.Classes(_int(net.classes))]
    for st in net.stages:
        if isinstance(st, arch.Block):
            body.append(block(st))
        else:
            body.append(ast.Stage(st.kind, seq(st.ops)))
    return ast.Module((ast.Network(net.name, (), tuple(body)),))

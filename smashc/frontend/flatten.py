"""Expanded architecture back to AST: a template-free .smash program for any arch.Network.

``expand(load(print(to_module(net)))) == net`` for every network the front end accepts,
which is how sampled or decoded architectures become readable, editable .smash files.
"""

from __future__ import annotations

from smashc import arch
from smashc.frontend import ast
from smashc.ops.common import int_expr as _int
from smashc.ops.registry import of


def op_call(op: arch.Op) -> ast.Call | ast.Sum:
    """The shortest call that expands back to ``op`` (defaults left out)."""
    if type(op) is arch.Sum:
        return ast.Sum(tuple(seq(p) for p in op.paths))
    entry = of(op)
    return ast.Call(entry.name, entry.args(op))


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

"""Printer/parser round trip: ``parse(printer.module(m)) == m`` for random valid ASTs, the
canonical form of the bundled examples, and comments surviving ``smashc fmt``."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import example_files

from smashc.cli import main
from smashc.frontend import ast, printer
from smashc.frontend.parser import parse

RESERVED = frozenset(
    "import network template def input classes let stem transition head block banks layer "
    "read write overwrite output repeat in if else sum x and or not true false".split()
)
BINOPS = ("or", "and", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "**")

# --- strategies ------------------------------------------------------------------------------
# Nesting is built with explicit depths (not st.recursive) to keep generation fast.

_FIRST = "abcxyzAZ_"
_REST = "abcxyz09AZ_"
plain_names = st.builds(
    lambda a, b: a + b, st.sampled_from(_FIRST), st.text(_REST, max_size=6)
).filter(lambda s: s not in RESERVED)
# Keywords as name prefixes/suffixes must still lex as names ("network_", "xs", "in2", "sums").
names = st.one_of(
    plain_names,
    st.sampled_from(["x1", "xs", "in2", "sums", "network_", "iff", "x_", "_x", "notb", "orx"]),
    st.sampled_from(["in_channels", "classes_", "relu", "conv", "min", "max", "std"]),
)

ints = st.one_of(st.integers(0, 20), st.integers(0, 10**30)).map(ast.Int)
floats = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False).map(
    lambda v: ast.Float(abs(v))
)
leaves = st.one_of(ints, floats, st.booleans().map(ast.Bool), names.map(ast.Name))


def _args(children: st.SearchStrategy) -> st.SearchStrategy:
    arg = st.builds(ast.Arg, st.none() | names, children)
    return st.lists(arg, max_size=3).map(tuple)


def _exprs_over(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        children,
        st.builds(ast.BinOp, st.sampled_from(BINOPS), children, children),
        st.builds(ast.UnaryOp, st.sampled_from(("-", "not")), children),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: ast.Tuple(tuple(xs))),
        st.builds(ast.Call, names, _args(children)),
    )


small_exprs = _exprs_over(leaves)
exprs = _exprs_over(_exprs_over(small_exprs))

calls = st.builds(ast.Call, names, _args(small_exprs))


def _seqs_over(paths: st.SearchStrategy | None, max_size: int = 5) -> st.SearchStrategy:
    item = calls
    if paths is not None:
        sums = st.lists(paths, min_size=2, max_size=3).map(lambda ps: ast.Sum(tuple(ps)))
        item = st.one_of(calls, calls, sums)
    return st.lists(item, min_size=1, max_size=max_size).map(lambda xs: ast.Seq(tuple(xs)))


seqs = _seqs_over(_seqs_over(_seqs_over(None, 2), 3), 5)

bank_refs = st.lists(
    st.builds(ast.BankRef, small_exprs, st.none() | small_exprs), min_size=1, max_size=3
).map(tuple)
params = st.lists(st.builds(ast.Param, names, st.none() | small_exprs), max_size=3).map(tuple)


def _bodies(stmt: st.SearchStrategy, max_size: int = 2) -> st.SearchStrategy:
    return st.lists(stmt, max_size=max_size).map(tuple)


def _with_control(simple: st.SearchStrategy, inner: st.SearchStrategy) -> st.SearchStrategy:
    """``simple`` statements, or repeat (both forms) / if (with and without else) around
    statements drawn from ``inner``."""
    body = _bodies(inner)
    return st.one_of(
        simple,
        st.builds(lambda stop, b: ast.Repeat(None, None, stop, b), small_exprs, body),
        st.builds(ast.Repeat, names, small_exprs, small_exprs, body),
        st.builds(ast.If, small_exprs, body, st.none() | body),
    )


lets = st.builds(ast.Let, names, exprs)
layers = st.builds(
    ast.Layer,
    st.none() | names,
    bank_refs,
    st.sampled_from(("write", "overwrite")),
    bank_refs,
    seqs,
)
block_simple = st.one_of(
    st.lists(st.builds(ast.BankGroup, small_exprs, small_exprs), min_size=1, max_size=3).map(
        lambda gs: ast.Banks(tuple(gs))
    ),
    layers,
    bank_refs.map(ast.Output),
    lets,
)
block_stmts = _with_control(block_simple, _with_control(block_simple, block_simple))
block_bodies = _bodies(block_stmts, 4)

net_simple = st.one_of(
    st.builds(ast.Input, small_exprs, small_exprs, small_exprs),
    st.builds(ast.Classes, small_exprs),
    lets,
    st.builds(ast.Stage, st.sampled_from(("stem", "transition", "head")), seqs),
    st.builds(ast.Block, st.none() | names, block_bodies),
    st.builds(ast.BlockUse, st.none() | names, names, _args(small_exprs)),
)
net_stmts = _with_control(net_simple, _with_control(net_simple, net_simple))

import_paths = st.text(
    st.characters(blacklist_characters='"\n', blacklist_categories=("Cs",)), max_size=12
)
items = st.one_of(
    st.builds(ast.Import, import_paths, st.just(True)),
    st.builds(ast.Import, names, st.just(False)),
    st.builds(ast.Macro, names, params, seqs),
    st.builds(ast.Template, names, params, block_bodies),
    st.builds(ast.Network, names, params, _bodies(net_stmts, 5)),
)
modules = st.lists(items, min_size=1, max_size=3).map(lambda xs: ast.Module(tuple(xs)))

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(modules)
def test_parse_print_roundtrip(m):
    text = printer.module(m)
    back = parse(text, "gen.smash")
    assert back == m, text
    # Spans are not compared, but the parsed nodes must carry real ones.
    assert all(i.span.line >= 1 and i.span.file == "gen.smash" for i in back.items)


@settings(max_examples=200, deadline=None)
@given(exprs)
def test_expression_roundtrip(e):
    text = printer.expr(e)
    m = parse(f"network n {{ let v = {text} }}")
    (net,) = m.items
    (let,) = net.body
    assert let.value == e, text


def test_every_construct_appears_in_a_sample():
    """A fixed module with every statement and expression form, so the property above is
    not the only guard (and the strategies above can be compared against it)."""
    text = """\
import std
import "lib/blocks.smash"
import ""

def unit(w, k=3) = bn -> relu -> conv(out=w, kernel=k)

def wide = sum { conv(out=8) | conv(out=8, kernel=1) -> bn | identity }

template t(layers, width=in_channels * 2) {
    banks 1 x in_channels, layers x width
    let half = width / 2
    repeat i in 0..layers {
        if i % 2 == 0 and not (i > 3 or i <= -1) {
            layer read 0..i + 1 write i + 1 = unit(width)
        } else {
            layer l2 read 0, i write i + 1 = sum { unit(width) | conv(out=width, kernel=(1, 3)) }
        }
    }
    repeat 2 {
        layer read 0 overwrite 0 = relu
    }
    if true {}
    output 0, 1..layers + 1
}

network net(depth=2, lr=0.5, flag=false) {
    input 3 x 32 x 32
    classes 10
    let c = -2 ** -depth + max(1, 2, 3) * 4 % 3 - 1.5e-07
    let tup = (1,)
    let pair = (1, (2, 3), f(x1=1, 2))
    stem { conv(out=16) -> bn -> relu }
    block b1 = t(depth, width=16)
    block = t
    repeat k in 1..3 {
        transition { avgpool }
    }
    if depth != 2 {
        block named {
            banks 2 x 8
        }
    } else {}
    head { gap -> linear(out=classes) }
}
"""
    m = parse(text)
    assert printer.module(m) == text
    assert parse(printer.module(m)) == m


# --- examples --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_example_formatting_is_idempotent(path):
    text = path.read_text(encoding="utf-8")
    m = parse(text, str(path))
    once = printer.module(m)
    twice = printer.module(parse(once, str(path)))
    assert twice == once
    assert parse(once) == m


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_example_passes_fmt_check(path, capsys):
    assert main(["fmt", "--check", str(path)]) == 0, capsys.readouterr().err


# --- comments --------------------------------------------------------------------------------

COMMENTED = """\
# file header
import std  # why std

# the unit every layer uses
def unit(w) = bn -> relu -> conv(out=w)  # pre-activation

# the network
network n(width=16) {  # after the brace
    # before input
    input 3 x 32 x 32  # CIFAR
    classes 10
    stem { conv(out=width) }  # after stem
    block b {
        # before banks
        banks 1 x width  # one bank
        repeat 2 {
            layer read 0 write 0 = unit(width)  # in repeat
            # end of repeat
        }
        if width > 8 {
            layer read 0 write 0 = relu  # then
            # end of then
        } else {
            # start of else
            layer read 0 write 0 = bn
            # end of else
        }
        # end of block
    }
    head { gap
        -> linear(out=classes)  # inside a multi-line head
    }
    # end of network
}
# end of file
"""


def _comments(text: str) -> list[str]:
    return [c.rstrip() for c in re.findall(r"#[^\n]*", text)]


def test_comments_survive_formatting():
    m = parse(COMMENTED)
    out = printer.module(m)
    assert _comments(out) == _comments(COMMENTED)
    assert parse(out) == m
    assert printer.module(parse(out)) == out


def test_comments_stay_with_their_statements():
    out = printer.module(parse(COMMENTED)).splitlines()

    def line_of(comment: str) -> str:
        (line,) = [x for x in out if comment in x]
        return line

    assert line_of("# CIFAR").strip() == "input 3 x 32 x 32  # CIFAR"
    assert line_of("# one bank").strip() == "banks 1 x width  # one bank"
    assert line_of("# pre-activation").startswith("def unit(w) =")
    assert line_of("# in repeat").strip().startswith("layer read 0 write 0 = unit(width)")
    # Comments on lines of their own stay on lines of their own, in order.
    for own in ("# before input", "# end of repeat", "# end of block", "# end of network"):
        assert line_of(own).strip() == own
    assert out.index(line_of("# before banks")) < out.index(line_of("# one bank"))
    assert out[-1] == "# end of file"


def test_comment_only_file():
    text = "# nothing here\n# at all\n"
    assert printer.module(parse(text)) == text


INSIDE_SEQUENCES = """\
def f(w) = conv(out=w)  # first op
    # before bn
    -> bn
    -> sum {
        relu
        # second path
        | identity  # identity path
    }  # after the sum
    -> relu

network n {
    input 3 x 8 x 8
    classes 10
    stem {
        # the stem's first op
        conv(out=8)
            -> bn  # its norm
            -> relu
    }
    head { gap -> linear(out=classes) }
}
"""


def test_comments_between_ops_stay_between_them():
    # a comment inside an op sequence keeps the sequence on one op per line and stays in
    # place (it used to move behind the whole statement)
    out = printer.module(parse(INSIDE_SEQUENCES))
    assert out == INSIDE_SEQUENCES
    two_spaces = INSIDE_SEQUENCES.replace("    ", "  ")  # not canonical
    assert printer.module(parse(two_spaces)) == out

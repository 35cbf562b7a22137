"""Semantics of expansion: stdlib templates, overrides, loops, conditionals, scoping, op
defaults, the flatten round trip, and the check/fmt/expand commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import TESTS, example_files

from smashc import arch
from smashc.cli import main
from smashc.diagnostics import SmashError
from smashc.frontend import flatten, printer
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_file, load_text
from smashc.frontend.parser import parse

SNIPPETS = sorted(TESTS.glob("snippets/*.smash"))


def net_of(body: str, *, cin: int = 16, head: bool = True, pre: str = "", **overrides):
    """Expands a network with ``input cin x 8 x 8``, 10 classes and (optionally) a head."""
    tail = "    head { gap -> linear(out=10) }\n" if head else ""
    text = f"{pre}network n {{\n    input {cin} x 8 x 8\n    classes 10\n{body}\n{tail}}}\n"
    return expand(load_text(text, "t.smash"), overrides)


def errors_of(body: str, **kw) -> list[tuple[str, str]]:
    with pytest.raises(SmashError) as info:
        net_of(body, **kw)
    return [(d.code, d.message) for d in info.value.diagnostics]


def conv(out, kernel=3, stride=1, padding=None, dilation=1, groups=1, bias=False):
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    d = (dilation, dilation)
    pad = arch.same_padding(k, d) if padding is None else (padding, padding)
    return arch.Conv(out, k, (stride, stride), pad, d, groups, bias)


BN, RELU = arch.BatchNorm(), arch.Act("relu")


def preact(width, kernel=3, stride=1):
    return (BN, RELU, conv(width, kernel, stride))


# --- the standard library --------------------------------------------------------------------


def test_resnet_block():
    (blk,) = net_of("    block = resnet_block(3, 16)", pre="import std\n").blocks
    assert blk.banks == (16,)
    assert blk.output == (0,)
    assert blk.template == "resnet_block"
    assert [(lay.reads, lay.writes, lay.mode) for lay in blk.layers] == [((0,), (0,), "write")] * 3
    for lay in blk.layers:
        assert lay.ops == preact(16) + preact(16)
    assert len({lay.name for lay in blk.layers}) == 3


def test_resnet_block_kernel_argument():
    (blk,) = net_of("    block = resnet_block(1, 16, kernel=5)", pre="import std\n").blocks
    assert blk.layers[0].ops == preact(16, 5) + preact(16, 5)


def test_dense_block():
    (blk,) = net_of("    block = dense_block(4, 12)", cin=24, pre="import std\n").blocks
    assert blk.banks == (24, 12, 12, 12, 12)
    assert blk.output == (0, 1, 2, 3, 4)
    for i, lay in enumerate(blk.layers):
        assert lay.reads == tuple(range(i + 1))
        assert lay.writes == (i + 1,)
        assert lay.ops == preact(48, 1) + preact(12)
    assert len(blk.layers) == 4


def test_dense_block_without_bottleneck():
    (blk,) = net_of("    block = dense_block(2, 8, bottleneck=0)", pre="import std\n").blocks
    assert [lay.ops for lay in blk.layers] == [preact(8)] * 2


def test_fractal_block():
    (blk,) = net_of("    block = fractal_block(3, 8)", pre="import std\n").blocks
    rows = 4
    assert blk.banks == (16,) + (8,) * rows
    expected = []
    for t in range(rows):
        for c in range(3):
            span = 2 ** (3 - 1 - c)
            if t % span == 0:
                expected.append(((t,), (t + span,)))
    assert [(lay.reads, lay.writes) for lay in blk.layers] == expected
    assert expected == [
        ((0,), (4,)), ((0,), (2,)), ((0,), (1,)), ((1,), (2,)),
        ((2,), (4,)), ((2,), (3,)), ((3,), (4,)),
    ]  # fmt: skip
    assert blk.output == (4,)
    assert all(lay.ops == (conv(8), BN, RELU) for lay in blk.layers)


def test_resnet_postact_block():
    (blk,) = net_of("    block = resnet_postact_block(2, 16)", pre="import std\n").blocks
    modes = [(lay.reads, lay.writes, lay.mode) for lay in blk.layers]
    assert modes == [((0,), (0,), "write"), ((0,), (0,), "overwrite")] * 2
    assert blk.layers[1].ops == (RELU,)
    assert blk.layers[0].ops == (conv(16), BN, RELU, conv(16), BN)


def test_bottleneck_and_mobilenet_blocks():
    body = "    block = bottleneck_block(1, 4)\n    block = mobilenet_block(1, 16, expansion=2)"
    b1, b2 = net_of(body, pre="import std\n").blocks
    assert b1.banks == (16,)
    assert b1.layers[0].ops == preact(4, 1) + preact(4) + preact(16, 1)
    assert b2.banks == (16,)
    depthwise = b2.layers[0].ops[3]
    assert depthwise == conv(32, 3, groups=32)
    assert b2.layers[0].ops[-2] == conv(16, 1)


def test_template_sees_in_channels_and_classes_but_not_network_names():
    pre = (
        "template t(w) {\n    banks 1 x in_channels, 1 x classes\n"
        "    layer read 0 write 1 = conv(out=classes)\n}\n"
    )
    (blk,) = net_of("    block = t(1)", cin=12, pre=pre).blocks
    assert blk.banks == (12, 10)
    hidden = "template u {\n    banks 1 x secret\n}\n"
    errs = errors_of("    let secret = 16\n    block = u", pre=hidden)
    assert errs[0] == ("E0101", "unknown name 'secret'")
    # The network's own names are visible as arguments.
    pre2 = pre.replace("1 x classes", "1 x w")
    (blk,) = net_of("    let secret = 10\n    block = t(secret)", cin=12, pre=pre2).blocks
    assert blk.banks == (12, 10)


# --- parameters and -D overrides ---------------------------------------------------------------

PARAM_NET = """\
import std

network p(depth=2, width=8, deep) {
    input 3 x 8 x 8
    classes 10
    stem { conv(out=width) }
    if deep > 0 {
        block = resnet_block(depth, width)
    }
    head { gap -> linear(out=classes) }
}
"""


def test_overrides():
    prog = load_text(PARAM_NET, "p.smash")
    net = expand(prog, {"deep": 1})
    assert net.blocks[0].banks == (8,) and len(net.blocks[0].layers) == 2
    net = expand(prog, {"deep": 1, "depth": 5, "width": 4})
    assert net.blocks[0].banks == (4,) and len(net.blocks[0].layers) == 5
    assert net.stages[0].ops == (conv(4),)
    assert expand(prog, {"deep": 0}).blocks == ()


def test_override_errors():
    prog = load_text(PARAM_NET, "p.smash")
    with pytest.raises(SmashError) as info:
        expand(prog)
    assert [d.code for d in info.value.diagnostics][0] == "E0102"
    assert "set it with -D deep=N" in info.value.diagnostics[0].message
    with pytest.raises(SmashError) as info:
        expand(prog, {"deep": 1, "dpth": 3})
    msg = info.value.diagnostics[0].message
    assert msg == "network 'p' has no parameter 'dpth' (it has: deep, depth, width)"


def test_parameter_defaults_see_earlier_parameters():
    text = (
        "network n(a=3, b=a * 2) {\n    input 3 x 8 x 8\n    classes b\n"
        "    head { gap -> linear(out=b) }\n}\n"
    )
    assert expand(load_text(text)).classes == 6
    assert expand(load_text(text), {"a": 5}).classes == 10
    assert expand(load_text(text), {"b": 7}).classes == 7


# --- control flow and scoping ------------------------------------------------------------------


def test_repeat_count_and_range():
    body = """\
    block {
        banks 1 x 16, 6 x 4
        repeat 2 {
            layer read 0 write 0 = relu
        }
        repeat i in 1..4 {
            layer read 0..i write i = conv(out=4)
        }
        repeat i in 3..1 {
            layer read 0 write 0 = bn
        }
        repeat j in -2..0 {
            layer read j + 3 write j + 6 = conv(out=4)
        }
        output 0..6
    }"""
    (blk,) = net_of(body).blocks
    got = [(lay.reads, lay.writes) for lay in blk.layers]
    assert got[:2] == [((0,), (0,))] * 2
    assert got[2:5] == [((0,), (1,)), ((0, 1), (2,)), ((0, 1, 2), (3,))]
    assert got[5:] == [((1,), (4,)), ((2,), (5,))]
    assert blk.output == (0, 1, 2, 3, 4, 5)


def test_repeat_at_network_level_and_nested():
    body = """\
    repeat s in 0..2 {
        repeat 2 {
            block {
                banks 1 x 16
                layer read 0 write 0 = conv(out=16, kernel=2 * s + 1)
            }
        }
    }"""
    net = net_of(body)
    assert [b.layers[0].ops[0].kernel for b in net.blocks] == [(1, 1), (1, 1), (3, 3), (3, 3)]
    assert len({b.name for b in net.blocks}) == 4


def test_loop_limit():
    errs = errors_of(
        "    repeat 1000 {\n        repeat 1000 {\n            let a = 1\n        }\n    }"
    )
    assert any("loops run more than" in m for _, m in errs)


def test_if_else():
    body = """\
    let w = 8
    if w > 4 and not (w == 6) {
        stem { conv(out=w) }
    } else {
        stem { conv(out=1) }
    }
    if false {
        transition { relu }
    }
    if w % 2 == 1 {
        transition { bn }
    } else {
        transition { relu6 }
    }"""
    net = net_of(body)
    assert [s.ops for s in net.stages[:2]] == [(conv(8),), (arch.Act("relu6"),)]


def test_if_needs_a_bool():
    assert errors_of("    if 1 {\n    }")[0] == (
        "E0104",
        "an 'if' condition must be true or false, got 1",
    )


def test_let_scoping():
    body = """\
    let w = 4
    let w = w * 2
    if true {
        let w = 100
        let inner = 1
    }
    repeat i in 0..3 {
        let w = 50
    }
    stem { conv(out=w) }"""
    assert net_of(body).stages[0].ops == (conv(8),)
    assert errors_of("    if true {\n        let inner = 1\n    }\n    let j = inner")[0][
        1
    ].startswith("unknown name 'inner'")
    assert errors_of("    repeat i in 0..2 {\n    }\n    let j = i")[0][1].startswith(
        "unknown name 'i'"
    )


def test_let_in_loop_body_is_per_iteration():
    body = """\
    block {
        banks 1 x 16, 3 x 4
        let k = 0
        repeat i in 0..3 {
            let k = k + i
            layer read 0 write i + 1 = conv(out=4, kernel=2 * k + 1)
        }
    }"""
    (blk,) = net_of(body).blocks
    assert [lay.ops[0].kernel[0] for lay in blk.layers] == [1, 3, 5]


def test_block_let_and_in_channels():
    body = """\
    block {
        let half = in_channels / 2
        banks 2 x half
        layer read 1 write 0 = conv(out=half)
    }"""
    (blk,) = net_of(body, cin=12).blocks
    assert blk.banks == (6, 6)


def test_expressions():
    body = """\
    let a = 7 / 2
    let b = 7 % 3 + 2 ** 3 ** 2 - -1
    let c = max(a, 1, min(9, 8))
    let t = (1, 2) == (1, 2) and (1, 2) != (2, 1)
    if t and a == 3 and b == 514 and c == 8 and 7 / 2.0 == 3.5 {
        stem { conv(out=c) }
    }"""
    assert net_of(body).stages[0].ops == (conv(8),)


@pytest.mark.parametrize(
    "expr, message",
    [
        ("1 / 0", "division by zero"),
        ("2 ** 100", "value too large"),
        ("2 ** -1", "negative exponents are not integers"),
        ("-true", "cannot negate true"),
        ("not 1", "'not' needs true or false, got 1"),
        ("1 and true", "'and' needs true or false on both sides"),
        ("(1, 2) + 1", "cannot apply '+' to (1, 2) and 1"),
        ("1.5 % 1", "'%' needs integers"),
        ("min()", "min() takes one or more positional arguments"),
        ("relu(1)", "'relu' is an op, not a value"),
    ],
)
def test_expression_errors(expr, message):
    (err,) = errors_of(f"    let a = {expr}")
    assert err[1] == message


# --- op arguments and defaults -----------------------------------------------------------------


def _stem(ops: str):
    return net_of(f"    stem {{ {ops} }}").stages[0].ops


def test_conv_same_padding_default():
    (c,) = _stem("conv(out=8)")
    assert (c.kernel, c.stride, c.padding, c.dilation, c.groups, c.bias) == (
        (3, 3), (1, 1), (1, 1), (1, 1), 1, False,
    )  # fmt: skip
    assert _stem("conv(out=8, kernel=5, dilation=2)")[0].padding == (4, 4)
    assert _stem("conv(out=8, kernel=(1, 3))")[0].padding == (0, 1)
    assert _stem("conv(out=8, kernel=(3, 5), dilation=(1, 2))")[0].padding == (1, 4)
    assert _stem("conv(out=8, kernel=1)")[0].padding == (0, 0)
    # An explicit padding wins, even a "wrong" one.
    assert _stem("conv(out=8, kernel=3, padding=0)")[0].padding == (0, 0)
    assert _stem("conv(out=8, kernel=3, padding=(2, 0))")[0].padding == (2, 0)
    # Positional arguments follow the documented order.
    assert _stem("conv(8, 5, 2)")[0] == conv(8, 5, stride=2)


def test_pool_and_other_defaults():
    ops = _stem(
        "avgpool -> maxpool(kernel=3) -> maxpool(kernel=3, stride=1, padding=1) -> bn(eps=0.1) "
        "-> leaky_relu -> leaky_relu(slope=1) -> identity -> gap -> linear(out=3, bias=false)"
    )
    assert ops == (
        arch.Pool("avg", (2, 2), (2, 2), (0, 0)),
        arch.Pool("max", (3, 3), (3, 3), (0, 0)),
        arch.Pool("max", (3, 3), (1, 1), (1, 1)),
        arch.BatchNorm(0.1, 0.1),
        arch.Act("leaky_relu", 0.01),
        arch.Act("leaky_relu", 1.0),
        arch.Act("identity"),
        arch.GlobalAvgPool(),
        arch.Linear(3, False),
    )


def test_smash_op_defaults():
    (op,) = _stem("smash(out=8)")
    assert op == arch.SmashOp(8, 32, (arch.SmashConv(), None, None, None))
    (op,) = _stem(
        "smash(out=8, bottleneck=4, c0=conv(kernel=5), c2=conv(dilation=2, act=identity))"
    )
    assert op.convs == (
        arch.SmashConv((5, 5)),
        None,
        arch.SmashConv((3, 3), (2, 2), 1, "identity"),
        None,
    )


def test_smash_op_errors():
    assert errors_of("    stem { smash(out=8, c1=conv(kernel=3)) }")[0][1] == (
        "smash conv c1 follows c0, so it needs c0"
    )
    assert errors_of("    stem { smash(out=8, c0=relu) }")[0][1].startswith(
        "argument 'c0' of smash must be"
    )
    assert errors_of("    stem { smash(out=8, c0=conv(act=tanh)) }")[0][1].startswith(
        "argument 'act' of a smash conv must be one of"
    )


def test_macro_arguments():
    pre = "def u(w, k=3, s=1) = bn -> conv(out=w, kernel=k, stride=s)\n"
    ops = net_of("    stem { u(4) -> u(4, 5) -> u(4, s=2) }", pre=pre).stages[0].ops
    assert ops == (BN, conv(4), BN, conv(4, 5), BN, conv(4, stride=2))


# --- the flatten round trip --------------------------------------------------------------------

ROUNDTRIP_FILES = [*example_files(), *SNIPPETS]


def _flatten_roundtrip(net: arch.Network) -> None:
    module = flatten.to_module(net)
    text = printer.module(module)
    assert parse(text) == module
    again = expand(load_text(text, "flat.smash"))
    assert again == net, text
    # The flat text is a fixed point: flattening the re-expansion prints the same text.
    assert printer.module(flatten.to_module(again)) == text


@pytest.mark.parametrize("path", ROUNDTRIP_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_flatten_roundtrip_files(path):
    program = load_file(path)
    if program.network is None:
        pytest.skip("library file")
    _flatten_roundtrip(expand(program))


@pytest.mark.parametrize("overrides", [{"depth": 8}, {"depth": 14, "width": 4}])
def test_flatten_roundtrip_with_overrides(overrides):
    _flatten_roundtrip(expand(load_file(TESTS / "snippets" / "resnet.smash"), overrides))


def test_flatten_roundtrip_odd_values():
    body = """\
    stem { bn(eps=2.5e-7, momentum=0.0) -> leaky_relu(slope=-0.25)
        -> conv(out=16, kernel=(1, 3), stride=(1, 2), padding=(0, 3), dilation=(2, 1)) }
    block b_l0 {
        banks 1 x 16, 1 x 8, 1 x 8
        layer block0 read 0 write 1, 2 = maxpool(kernel=1, stride=1) -> conv(out=16, kernel=1)
        layer read 2, 1 overwrite 1 = sum { conv(out=8) | sum { identity | relu } -> conv(out=8) }
        output 2, 0
    }
    block {
        banks 3 x 8
        layer read 0, 1, 2 write 0, 1, 2 = identity
        output 2, 1
    }"""
    _flatten_roundtrip(net_of(body, cin=16))


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_check_ok(capsys):
    files = [str(p) for p in SNIPPETS]
    assert main(["check", *files]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == len(files)
    assert lines[0].startswith(f"{files[0]}: ok (network ")
    assert (
        f"{TESTS / 'snippets' / 'resnet.smash'}: ok (network resnet: 3 blocks, 9 layers)" in lines
    )


def test_cli_check_library_and_define(in_tmp, capsys):
    Path("lib.smash").write_text("def u = relu\n")
    assert main(["check", "lib.smash"]) == 0
    assert capsys.readouterr().out == "lib.smash: ok (library)\n"
    src = TESTS / "snippets" / "resnet.smash"
    assert main(["check", "-D", "depth=8", str(src)]) == 0
    assert "3 blocks, 3 layers" in capsys.readouterr().out
    assert main(["check", "-D", "nope=1", str(src)]) == 1
    assert "has no parameter 'nope'" in capsys.readouterr().err
    assert main(["check", "-D", "depth=x", str(src)]) == 1
    assert "-D expects NAME=INTEGER, got 'depth=x'" in capsys.readouterr().err


UGLY = "network  n{input 3 x 8 x 8 classes 10\n  head{gap->linear(out=10)}}"
PRETTY = printer.module(parse(UGLY))


def test_cli_fmt_check(in_tmp, capsys):
    Path("ugly.smash").write_text(UGLY)
    Path("pretty.smash").write_text(PRETTY)
    assert main(["fmt", "--check", "pretty.smash"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["fmt", "--check", "pretty.smash", "ugly.smash"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == "would reformat ugly.smash\n"
    assert Path("ugly.smash").read_text() == UGLY


def test_cli_fmt_diff(in_tmp, capsys):
    Path("ugly.smash").write_text(UGLY)
    assert main(["fmt", "--diff", "ugly.smash"]) == 1
    out, err = capsys.readouterr()
    assert err == "would reformat ugly.smash\n"
    assert out.startswith("--- ugly.smash (original)\n+++ ugly.smash (fmt)\n@@ ")
    assert "+    head { gap -> linear(out=10) }\n" in out
    assert Path("ugly.smash").read_text() == UGLY
    Path("pretty.smash").write_text(PRETTY)
    assert main(["fmt", "--diff", "pretty.smash"]) == 0
    assert capsys.readouterr() == ("", "")


def test_cli_fmt_rewrites(in_tmp, capsys):
    Path("ugly.smash").write_text(UGLY)
    assert main(["fmt", "ugly.smash"]) == 0
    assert capsys.readouterr().out == "reformatted ugly.smash\n"
    assert Path("ugly.smash").read_text() == PRETTY
    assert main(["fmt", "--check", "ugly.smash"]) == 0


def test_cli_fmt_syntax_error(in_tmp, capsys):
    Path("bad.smash").write_text("network n {\n")
    assert main(["fmt", "--check", "bad.smash"]) == 1
    assert "bad.smash:1:11: error[E0003]: unclosed '{'" in capsys.readouterr().err
    assert Path("bad.smash").read_text() == "network n {\n"


def test_cli_expand(capsys):
    src = TESTS / "snippets" / "densenet.smash"
    assert main(["expand", "-D", "layers=2", str(src)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out == printer.module(flatten.to_module(expand(load_file(src), {"layers": 2})))
    assert expand(load_text(out)) == expand(load_file(src), {"layers": 2})
    assert "import" not in out and "repeat" not in out and "dense_block" in out


def test_cli_expand_errors(in_tmp, capsys):
    Path("lib.smash").write_text("def u = relu\n")
    assert main(["expand", "lib.smash"]) == 1
    assert "error[E0104]: file defines no network" in capsys.readouterr().err
    Path("bad.smash").write_text("network n { stem { rleu } }\n")
    assert main(["expand", "bad.smash"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "bad.smash:1:13" in err


@pytest.mark.parametrize("argv", [["frobnicate"], ["check"], ["fmt", "--bogus", "x.smash"]])
def test_cli_usage_errors_exit_1(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 1
    assert "usage: smashc" in capsys.readouterr().err

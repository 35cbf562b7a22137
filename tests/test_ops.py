"""The op registry: every entry compiles, round-trips, agrees with torch and with the oracle.

For each registered op, a tiny network running the entry's ``example`` compiles; flattening
it back to .smash expands to the same network; the free-weights fx module (the entry's
``fx``) equals the reference interpreter (the entry's ``run``) with ShapeProp shapes equal to
the inferred ones (the entry's ``shape``); and the report's parameters and MACs (the entry's
``cost``) equal torch's count of that module. A toy op registered inside a test (the worked
example of docs/ir.md, "Adding an op") passes the same checks and is unregistered after.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from smash_space import check_fx_against_oracle, one_thread  # noqa: F401 (autouse)
from test_report import counted

from smashc import ops, report
from smashc.diagnostics import SmashError
from smashc.frontend import printer
from smashc.frontend.expand import expand
from smashc.frontend.flatten import to_module
from smashc.frontend.loader import load_text
from smashc.ir.nodes import OpNode
from smashc.pipeline import compile_text
from smashc.shape import Shape

ROOT = Path(__file__).resolve().parent.parent


def network_text(example: str) -> str:
    """A network whose stem runs ``example`` after a conv to 8 channels on a 9x9 map."""
    return f"""\
network uses_op {{
    input 3 x 9 x 9
    classes 5
    stem {{ conv(out=8, kernel=3) -> {example} }}
    head {{ gap -> linear(out=classes) }}
}}
"""


def check_op(entry: ops.OpDef) -> None:
    assert entry.example, f"op {entry.name!r} has no example"
    text = network_text(entry.example)
    net = expand(load_text(text))
    assert any(ops.of(op) is entry for op in net.stages[0].ops)
    # flatten -> print -> parse -> expand gives the network back (the entry's ``args``)
    assert expand(load_text(printer.module(to_module(net)))) == net
    ir = compile_text(text)
    gm = check_fx_against_oracle(ir, net, seed=3)
    assert report.totals(ir) == counted(gm.float(), ir.input)


@pytest.mark.parametrize("name", list(ops.names()))
def test_every_op(name):
    check_op(ops.lookup(name))


def test_registering_an_op_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        ops.register(ops.lookup("conv"))
    with pytest.raises(ValueError, match="cannot also select"):
        ops.register(dataclasses.replace(ops.lookup("relu"), name="relu_again"))


# --- a toy op registered by the test: the worked example of docs/ir.md, "Adding an op" -------


def doc_example() -> str:
    """The Python block of docs/ir.md's "Adding an op" section (the whole new op file)."""
    text = (ROOT / "docs" / "ir.md").read_text(encoding="utf-8")
    section = text[text.index("## Adding an op") :]
    return section[section.index("```python\n") + len("```python\n") : section.index("```\n\n")]


@pytest.fixture
def hardtanh(monkeypatch) -> Iterator[types.ModuleType]:
    """The documented op file, run as a module (which registers the op); unregistered after."""
    module = types.ModuleType("hardtanh_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look it up
    exec(compile(doc_example(), "docs/ir.md", "exec"), module.__dict__)
    try:
        yield module
    finally:
        ops.unregister("hardtanh")


def test_toy_op_runs_through_every_stage(hardtanh):
    assert ops.lookup("hardtanh") is hardtanh.HARDTANH
    check_op(hardtanh.HARDTANH)
    ir = compile_text(network_text("hardtanh(low=-0.5)"))
    (node,) = [n for n in ir.graph if isinstance(ir.payload(n), OpNode) and n.endswith("hardtanh")]
    assert node == "stem.1hardtanh"
    assert ir.payload(node).op == hardtanh.HardTanh(-0.5, 1.0)
    assert ir.shape(node) == Shape(8, 9, 9)
    assert report.totals(ir) == (8 * 3 * 9 + 5 * 8 + 5, 8 * 3 * 9 * 81 + 5 * 8)


def test_toy_op_checks_its_arguments(hardtanh):
    with pytest.raises(SmashError) as e:
        expand(load_text(network_text("hardtanh(low=2, high=1)")))
    (d,) = e.value.diagnostics
    assert (d.code, d.message) == ("E0104", "hardtanh needs low < high, got 2.0, 1.0")
    with pytest.raises(SmashError) as e:
        expand(load_text(network_text("hardtanh(lo=2)")))
    assert "has no argument 'lo' (it takes: low, high); did you mean 'low'?" in str(e.value)


def test_toy_op_is_gone_after_unregistering(hardtanh):
    ops.unregister("hardtanh")
    try:
        assert ops.lookup("hardtanh") is None
        with pytest.raises(SmashError, match="unknown op 'hardtanh'"):
            expand(load_text(network_text("hardtanh")))
        with pytest.raises(TypeError):
            ops.of(hardtanh.HardTanh())
    finally:
        ops.register(hardtanh.HARDTANH)  # for the fixture to remove

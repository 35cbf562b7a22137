"""Unit tests of the passes: each normalisation rewrite fires on a case built for it and keeps the
network's function (run_ir before/after with one WeightStore), infer-shapes reports located
errors, verify catches broken graphs, and the pass manager / CLI flags behave."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import networkx as nx
import pytest
import torch

from smashc import arch
from smashc.backends.interpreter import WeightStore, run_ir, run_network
from smashc.cli import main
from smashc.diagnostics import SmashError
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_file, load_text
from smashc.ir import IRGraph, dump, lower
from smashc.ir.nodes import Add, BankVersion, Concat, OpNode, Slice
from smashc.ir.query import layer_accesses
from smashc.passes import (
    DEFAULT_PIPELINE,
    PASSES,
    TRAINING_NEEDS,
    TRAINING_PIPELINE,
    Pass,
    PassFailure,
    check_order,
    register,
    resolve,
    run_pipeline,
    trim,
    verify,
)
from smashc.pipeline import compile_program

NORMALISATION = ("remove-zero-reads", "fold-trivial", "remove-dead-writes", "canonicalize", "cse")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny float64 tensors: thread start-up costs more than the work (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- helpers ------------------------------------------------------------------------------------


def net_of(src: str, file: str = "t.smash") -> arch.Network:
    return expand(load_text(src, file))


def shaped(net: arch.Network) -> IRGraph:
    """Lowered, verified IR with shapes (the precondition of the normalisation passes)."""
    return run_pipeline(lower(net), ("verify", "infer-shapes")).ir


def apply(ir: IRGraph, *names: str) -> IRGraph:
    """Runs ``names`` with the verifier after each, and checks the final IR once more."""
    out = run_pipeline(ir, names, verify_each=True).ir
    assert verify.check(out) == []
    return out


def inputs(ir: IRGraph, n: int = 2, seed: int = 1) -> torch.Tensor:
    c, h, w = ir.input
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g, dtype=torch.float64)


def assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), (a - b).abs().max().item()


def same_function(before: IRGraph, after: IRGraph, store_after: WeightStore | None = None):
    x = inputs(before)
    store = WeightStore(seed=7)
    ref = run_ir(before, x, store)
    got = run_ir(after, x, store_after if store_after is not None else store)
    assert_close(ref, got)
    return ref


def kinds(ir: IRGraph, kind: type) -> list[str]:
    return [n for n in ir.graph if isinstance(ir.payload(n), kind)]


def frame(block: str, stem_out: int = 8, classes: int = 3, hw: int = 6) -> str:
    """A network around one block written inline."""
    return f"""network t {{
    input 3 x {hw} x {hw}
    classes {classes}
    stem {{ conv(out={stem_out}) }}
{block}
    head {{ gap -> linear(out={classes}) }}
}}
"""


# --- remove-zero-reads ----------------------------------------------------------------------------


def zero_read_net(extra: tuple[arch.Layer, ...] = ()) -> arch.Network:
    """Built directly as arch (the front end rejects reads of never-written banks, E0202).

    l0 reads the zero bank 1 after bank 0 (relu then a groups=1 conv), l1 reads bank 1 first
    (a SMASH op); ``extra`` layers are appended.
    """
    smash = arch.SmashOp(4, 8, (arch.SmashConv((3, 3)), arch.SmashConv((1, 1)), None, None))
    return arch.Network(
        "zero_reads",
        (3, 6, 6),
        3,
        (
            arch.Stage("stem", "stem", (arch.Conv(4),)),
            arch.Block(
                "b",
                (4, 4, 4, 4),
                (
                    arch.Layer("l0", (0, 1), (2,), (arch.Act("relu"), arch.Conv(4))),
                    arch.Layer("l1", (1, 0, 2), (1,), (smash,)),
                    *extra,
                ),
                (0, 1, 2),
            ),
            arch.Stage("head", "head", (arch.GlobalAvgPool(), arch.Linear(3))),
        ),
    )


# reads of the zero bank 3 that must stay: into a bn, and into a grouped conv
KEEP_ZERO_READS = (
    arch.Layer("l2", (3, 0), (2,), (arch.BatchNorm(), arch.Act("relu"), arch.Conv(4))),
    arch.Layer("l3", (3, 0), (0,), (arch.Conv(4, groups=2),)),
)


def test_remove_zero_reads_fires_and_keeps_function():
    net = zero_read_net()
    before = shaped(net)
    assert before.operands("l0.read") == ["b.bank0.v0", "b.bank1.v0"]
    assert before.operands("l1.read") == ["b.bank1.v0", "b.bank0.v0", "b.bank2.v1"]
    after = apply(before, "remove-zero-reads")
    # (a) the zero banks are gone from the reads that feed a groups=1 conv or a SMASH op
    assert after.operands("l0.read") == ["b.bank0.v0"]
    assert after.operands("l1.read") == ["b.bank0.v0", "b.bank2.v1"]
    assert str(after.shape("l0.read")) == "4x6x6" and str(after.shape("l0.0relu")) == "4x6x6"
    assert str(after.shape("l1.read")) == "8x6x6"
    assert after.graph.number_of_edges() == before.graph.number_of_edges() - 2
    # (b) same outputs once the dropped input channels' weight columns are sliced away
    x = inputs(before)
    store = WeightStore(seed=3)
    ref = run_ir(before, x, store)
    assert_close(run_network(net, x, WeightStore(seed=3)), ref)
    sliced = WeightStore(seed=3)
    sliced.tensors = {k: dict(v) for k, v in store.tensors.items()}
    sliced.tensors["l0.1conv"]["weight"] = store.tensors["l0.1conv"]["weight"][:, 0:4]
    sliced.tensors["l1.0smash"]["w1x1"] = store.tensors["l1.0smash"]["w1x1"][:, 4:12]
    assert_close(run_ir(after, x, sliced), ref)
    # the whole default pipeline agrees too
    full = run_pipeline(lower(net)).ir
    assert not any(
        isinstance(full.payload(n), BankVersion) and not full.operands(n) for n in full.graph
    )
    assert_close(run_ir(full, x, sliced), ref)


def test_remove_zero_reads_keeps_reads_into_bn_and_grouped_conv():
    before = shaped(zero_read_net(KEEP_ZERO_READS))
    after = apply(before, "remove-zero-reads")
    assert after.operands("l0.read") == ["b.bank0.v0"]
    assert after.operands("l2.read") == before.operands("l2.read") == ["b.bank3.v0", "b.bank0.v0"]
    assert after.operands("l3.read") == before.operands("l3.read")


def test_default_pipeline_with_a_surviving_zero_bank():
    net = zero_read_net(KEEP_ZERO_READS)
    full = run_pipeline(lower(net)).ir
    x = inputs(full)
    store = WeightStore(seed=3)
    ref = run_network(net, x, store)
    sliced = WeightStore(seed=3)
    sliced.tensors = {k: dict(v) for k, v in store.tensors.items()}
    sliced.tensors["l0.1conv"]["weight"] = store.tensors["l0.1conv"]["weight"][:, 0:4]
    sliced.tensors["l1.0smash"]["w1x1"] = store.tensors["l1.0smash"]["w1x1"][:, 4:12]
    assert_close(run_ir(full, x, sliced), ref)


# --- fold-trivial ---------------------------------------------------------------------------------

FOLD = frame(
    """    block b {
        banks 2 x 8
        layer read 0 write 1 = relu -> conv(out=8)
        layer read 0, 1 write 0, 1 = conv(out=16, kernel=1)
        output 1
    }"""
)


def test_fold_trivial_fires_and_keeps_function():
    before = shaped(net_of(FOLD))
    # one-operand concats (a single-bank read, the one-bank block output), a whole-input slice
    assert before.operands("b_l0.read") == ["b.bank0.v0"]
    assert before.operands("b.out") == ["b.bank1.v2"]
    assert isinstance(before.payload("b.in0"), Slice)
    assert before.operands("b.bank1.v1") == ["b.bank1.v0", "b_l0.1conv"]  # 0 + x
    after = apply(before, "fold-trivial")
    for gone in ("b_l0.read", "b.out", "b.in0"):
        assert gone not in after.graph
    assert after.operands("b.bank1.v1") == ["b_l0.1conv"]
    assert after.operands("b_l0.0relu") == ["b.bank0.v0"]
    assert after.operands("b.bank0.v0") == ["stem.0conv"]
    assert after.operands("head.0gap") == ["b.bank1.v2"]
    # the two-chunk slices are not whole, the two-bank read stays
    assert {"b_l1.chunk0", "b_l1.chunk1", "b_l1.read"} <= set(after.graph)
    # postconditions
    for n in after.graph:
        p = after.payload(n)
        ops = after.operands(n)
        if isinstance(p, Concat | Add):
            assert len(ops) > 1, n
        if isinstance(p, Slice):
            assert (p.start, p.stop) != (0, after.shape(ops[0]).channels), n
        if isinstance(p, BankVersion) and len(ops) == 2:
            assert after.operands(ops[0]), n  # not an all-zero version
        assert after.shape(n) == before.shape(n)
    same_function(before, after)


def test_fold_trivial_single_path_sum():
    """A one-path sum (only constructible as arch) lowers to a one-operand add, which folds."""
    path = (arch.Act("relu"), arch.Conv(4, kernel=(1, 1), padding=(0, 0)))
    net = arch.Network(
        "one_path",
        (3, 5, 5),
        2,
        (
            arch.Stage("stem", "stem", (arch.Conv(4), arch.Sum((path,)))),
            arch.Stage("head", "head", (arch.GlobalAvgPool(), arch.Linear(2))),
        ),
    )
    before = shaped(net)
    assert before.operands("stem.1sum") == ["stem.1sum.p0.1conv"]
    after = apply(before, "fold-trivial")
    assert "stem.1sum" not in after.graph
    assert after.operands("head.0gap") == ["stem.1sum.p0.1conv"]
    same_function(before, after)


# --- remove-dead-writes ---------------------------------------------------------------------------

DEAD = frame(
    """    block b {
        banks 3 x 8
        layer read 0 write 1 = relu -> conv(out=8)
        layer read 0 write 2 = bn -> relu -> conv(out=8)
        layer read 0 overwrite 1 = conv(out=8, kernel=1)
        layer read 1 write 0 = conv(out=8)
        output 0, 1
    }"""
)


def test_remove_dead_writes_fires_and_keeps_function():
    before = shaped(net_of(DEAD))
    after = apply(before, "remove-dead-writes")
    # b_l1 writes bank 2, which nothing reads and the output does not list;
    # b_l0's write into bank 1 is overwritten by b_l2 before anything reads it
    dead = {
        n for n in before.graph if getattr(before.payload(n), "layer", None) in ("b_l0", "b_l1")
    }
    dead |= {"b.bank1.v0", "b.bank1.v1", "b.bank2.v0", "b.bank2.v1"}
    assert dead and not dead & set(after.graph)
    assert set(before.graph) - set(after.graph) == dead
    out = "output"
    assert all(n == out or nx.has_path(after.graph, n, out) for n in after.graph)
    assert [la.name for la in layer_accesses(after, "b")] == ["b_l2", "b_l3"]
    same_function(before, after)


# --- canonicalize ---------------------------------------------------------------------------------

ELEVEN = " | ".join(
    f"conv(out=4, kernel=1, bias=true) -> leaky_relu(slope=0.{k + 1})" for k in range(11)
)
CANON = f"""network t {{
    input 3 x 5 x 5
    classes 2
    stem {{ sum {{ {ELEVEN} }} }}
    head {{ gap -> linear(out=2) }}
}}
"""


def test_canonicalize_sorts_add_operands():
    before = shaped(net_of(CANON))
    ops = before.operands("stem.0sum")
    assert ops == [f"stem.0sum.p{k}.1leaky_relu" for k in range(11)]  # program order
    after = apply(before, "canonicalize")
    got = after.operands("stem.0sum")
    assert got == sorted(ops) and got != ops  # "p10" sorts before "p2"
    assert got[:3] == [
        "stem.0sum.p0.1leaky_relu",
        "stem.0sum.p1.1leaky_relu",
        "stem.0sum.p10.1leaky_relu",
    ]
    assert set(after.graph.edges) == set(before.graph.edges)
    same_function(before, after)
    assert apply(after, "canonicalize").operands("stem.0sum") == got  # idempotent


# --- cse ------------------------------------------------------------------------------------------

CSE = frame(
    """    block b {
        banks 4 x 8
        layer read 0 write 1 = sum { relu -> conv(out=8) | relu -> conv(out=8) }
        layer read 0, 1 write 2 = bn -> relu -> conv(out=8)
        layer read 0, 1 write 3 = bn -> relu -> conv(out=8)
    }
    transition { sum { maxpool(kernel=3, stride=1, padding=1) -> conv(out=8, kernel=1)
                     | maxpool(kernel=3, stride=1, padding=1) -> conv(out=8) } }""",
    stem_out=8,
)


def test_cse_merges_weight_free_duplicates_and_keeps_function():
    before = shaped(net_of(CSE))
    after = apply(before, "cse")
    gone = set(before.graph) - set(after.graph)
    # the second relu and the second maxpool apply the same op to the same operand
    assert gone == {"b_l0.0sum.p1.0relu", "transition1.0sum.p1.0maxpool"}
    assert after.operands("b_l0.0sum.p1.1conv") == ["b_l0.0sum.p0.0relu"]
    assert after.operands("transition1.0sum.p1.1conv") == ["transition1.0sum.p0.0maxpool"]
    # equal convs on one input keep their own weights; the weighted layers' reads stay
    assert {"b_l0.0sum.p0.1conv", "b_l0.0sum.p1.1conv", "b_l1.read", "b_l2.read"} <= set(
        after.graph
    )
    assert after.operands("b_l1.read") == after.operands("b_l2.read")
    # postcondition: no two weight-free nodes apply one op to the same operands
    seen = {}
    for n in after.nodes():
        p = after.payload(n)
        if isinstance(p, OpNode) and isinstance(p.op, arch.Act | arch.Pool | arch.GlobalAvgPool):
            key = (p.op, tuple(after.operands(n)))
            assert key not in seen, (n, seen.get(key))
            seen[key] = n
    same_function(before, after)


def test_cse_keeps_reads_of_weighted_layers():
    src = frame(
        """    block b {
        banks 4 x 8
        layer read 0 write 1 = conv(out=8)
        layer read 0, 1 write 2 = relu -> conv(out=8)
        layer read 0, 1 write 3 = relu -> conv(out=8, kernel=1)
    }"""
    )
    before = shaped(net_of(src))
    after = apply(before, "cse")
    same_function(before, after)
    reads = {la.name: la.reads for la in layer_accesses(after, "b")}
    assert reads == {"b_l0": (0,), "b_l1": (0, 1), "b_l2": (0, 1)}


# --- each normalisation pass on every case --------------------------------------------------------

CASES = {"fold": FOLD, "dead": DEAD, "canon": CANON, "cse": CSE}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", NORMALISATION)
def test_pass_keeps_function_on_other_cases(case, name):
    before = shaped(net_of(CASES[case]))
    same_function(before, apply(before, name))


def test_default_pipeline_is_registered():
    assert set(DEFAULT_PIPELINE) <= set(PASSES)
    assert set(NORMALISATION) <= set(DEFAULT_PIPELINE)
    assert DEFAULT_PIPELINE[0] == "verify" and DEFAULT_PIPELINE[-1] == "verify"


# --- infer-shapes errors --------------------------------------------------------------------------


def compile_error(src: str) -> SmashError:
    with pytest.raises(SmashError) as info:
        compile_program(load_text(src, "net.smash"))
    return info.value


def test_infer_shapes_kernel_larger_than_map():
    exc = compile_error(
        """network n {
    input 3 x 4 x 4
    classes 10
    stem { conv(out=8, kernel=7, dilation=3, padding=0) }
    head { gap -> linear(out=10) }
}
"""
    )
    assert [d.code for d in exc.diagnostics] == ["E0401"]
    assert exc.render().splitlines() == [
        "net.smash:4:12: error[E0401]: conv with kernel 7 and dilation 3 spans 19 px but the "
        "input is 4 px with padding 0",
        "  |",
        "4 |     stem { conv(out=8, kernel=7, dilation=3, padding=0) }",
        "  |            " + "^" * 44,
    ]


def test_infer_shapes_linear_on_spatial_map():
    exc = compile_error(
        """network n {
    input 3 x 8 x 8
    classes 10
    stem { conv(out=8) }
    head { linear(out=10) }
}
"""
    )
    assert [d.code for d in exc.diagnostics] == ["E0402"]
    assert exc.render().splitlines()[0] == (
        "net.smash:5:12: error[E0402]: linear needs a 1x1 map (use gap first), but gets 8x8x8"
    )
    assert exc.render().splitlines()[3] == "  |            " + "^" * 14


def test_infer_shapes_mismatched_sum():
    exc = compile_error(
        """network n {
    input 3 x 8 x 8
    classes 10
    stem { sum { conv(out=8, stride=2) | conv(out=8) } }
    head { gap -> linear(out=10) }
}
"""
    )
    assert [d.code for d in exc.diagnostics] == ["E0404"]
    assert exc.render().splitlines()[0] == (
        "net.smash:4:12: error[E0404]: cannot add values of shapes 8x4x4, 8x8x8"
    )


def test_infer_shapes_bank_written_at_other_resolution():
    exc = compile_error(
        """network n {
    input 3 x 8 x 8
    classes 10
    stem { conv(out=8) }
    block b {
        banks 1 x 8
        layer read 0 write 0 = conv(out=8, stride=2)
    }
    head { gap -> linear(out=10) }
}
"""
    )
    assert [d.code for d in exc.diagnostics] == ["E0405"]
    lines = exc.render().splitlines()
    assert lines[0] == (
        "net.smash:7:9: error[E0405]: bank 0 of block 'b' holds 8x8x8 values but this layer "
        "writes 8x4x4"
    )
    assert lines[2] == "7 |         layer read 0 write 0 = conv(out=8, stride=2)"
    assert lines[3] == "  |         " + "^" * 44


def test_infer_shapes_sets_every_shape():
    ir = shaped(net_of(CSE))
    assert set(ir.shapes) == set(ir.graph)
    assert str(ir.shape("output")) == "3x1x1"
    assert str(ir.shape("b.out")) == "32x6x6"


# --- verify ---------------------------------------------------------------------------------------


def test_verify_accepts_lowered_and_normalised_ir():
    ir = lower(net_of(CSE))
    assert verify.check(ir) == []
    assert verify.check(run_pipeline(ir).ir) == []


def test_verify_catches_cycle():
    ir = lower(net_of(FOLD))
    g = ir.copy_graph()
    g.add_edge("b_l1.0conv", "b_l0.0relu", index=1, kind="data")
    bad = ir.with_graph(g)
    problems = verify.check(bad)
    assert [d.code for d in problems] == ["E0400"]
    assert problems[0].message.startswith("invalid IR: cycle through ")
    with pytest.raises(SmashError):
        PASSES["verify"](bad)


def test_verify_catches_bad_operand_indices():
    ir = lower(net_of(FOLD))
    g = ir.copy_graph()
    g.edges["stem.0conv", "b.in0"]["index"] = 2  # a slice's only operand must be index 0
    g.edges["b.bank0.v0", "b_l1.read"]["index"] = 1  # two operands both numbered 1
    g.add_edge("input", "output", index=1, kind="data")  # output with two operands
    problems = verify.check(ir.with_graph(g))
    messages = [d.message for d in problems]
    assert "invalid IR: operands of %b.in0 are numbered [2]" in messages
    assert "invalid IR: operands of %b_l1.read are numbered [1, 1]" in messages
    assert "invalid IR: %output (Output) has 2 operands" in messages
    assert {d.code for d in problems} == {"E0400"}


def test_verify_catches_version_order_and_bad_shapes():
    ir = shaped(net_of(FOLD))
    g = ir.copy_graph()
    p = g.nodes["b.bank1.v1"]["payload"]
    g.nodes["b.bank1.v1"]["payload"] = dataclasses.replace(p, version=5)
    msgs = [d.message for d in verify.check(ir.with_graph(g, shapes=None))]
    assert msgs == ["invalid IR: %b.bank1.v2 follows a later version %b.bank1.v1"]
    shapes = dict(ir.shapes)
    shapes["b_l0.0relu"] = type(shapes["b_l0.0relu"])(9, 6, 6)
    msgs = [d.message for d in verify.check(ir.replace(shapes=shapes))]
    assert "invalid IR: shape of %b_l0.0relu is 9x6x6 but its operands give 8x6x6" in msgs
    del shapes["b_l0.0relu"]
    msgs = [d.message for d in verify.check(ir.replace(shapes=shapes))]
    assert msgs == ["invalid IR: 1 node(s) have no shape, e.g. %b_l0.0relu"]


# --- purity: the rewrites edit a copy, shared with the input where unchanged ---------------------

NORMALISING = ("remove-zero-reads", "fold-trivial", "remove-dead-writes", "canonicalize", "cse")


def _adjacency(g: nx.DiGraph) -> tuple:
    """Everything the passes read of a graph, in order: nodes and attributes, both edge maps."""

    def edges(adj):
        return {u: [(v, dict(d)) for v, d in adj[u].items()] for u in adj}

    return list(g._node.items()), edges(g._succ), edges(g._pred)


def _consistent(g: nx.DiGraph) -> None:
    """Successor and predecessor maps describe the same edges, with one data dict each."""
    assert set(g._succ) == set(g._pred) == set(g._node)
    assert g._adj is g._succ
    for u, users in g._succ.items():
        for v, data in users.items():
            assert g._pred[v][u] is data
    assert sum(map(len, g._succ.values())) == sum(map(len, g._pred.values()))


def _normalised_inputs() -> list[IRGraph]:
    from smash_space import CASES, example_files, sampled

    nets = [sampled(*case).net for case in CASES[::10]]
    nets += [expand(load_file(p)) for p in example_files()]
    return [PASSES["infer-shapes"](lower(net)) for net in nets]


def test_normalisation_passes_leave_their_input_alone():
    """Each pass returns a new graph where it changes something and never edits its input's
    (they share the adjacency dicts that a pass does not edit); the graph it returns is
    one networkx can keep working on."""
    changed = dict.fromkeys(NORMALISING, 0)
    for ir in _normalised_inputs():
        for name in NORMALISING:
            before = _adjacency(ir.graph)
            out = PASSES[name](ir)
            assert _adjacency(ir.graph) == before, name
            _consistent(out.graph)
            if out is not ir:
                assert out.graph is not ir.graph
                changed[name] += 1
                g = out.graph.copy()  # networkx's own methods on the result
                g.remove_node(next(iter(out.graph)))
            ir = out
        assert verify.check(ir) == []
    assert changed["fold-trivial"] and changed["remove-dead-writes"], changed


# --- pass manager ---------------------------------------------------------------------------------


def test_unknown_pass_is_a_user_error():
    with pytest.raises(SmashError) as info:
        run_pipeline(lower(net_of(FOLD)), ("verify", "no-such-pass"))
    (d,) = info.value.diagnostics
    assert d.code == "E0102"
    assert d.message.startswith("unknown pass 'no-such-pass' (passes: ")
    assert all(name in d.message for name in PASSES)
    assert str(d.span) == "<command line>:1:1"


def test_verify_each_names_the_breaking_pass(monkeypatch):
    def breaks(ir: IRGraph) -> IRGraph:
        g = ir.copy_graph()
        g.add_edge("output", "input", index=0, kind="data")
        return ir.with_graph(g)

    monkeypatch.setitem(PASSES, "break-it", Pass("break-it", breaks))
    ir = lower(net_of(FOLD))
    run_pipeline(ir, ("verify", "break-it"))  # unnoticed without the verifier
    with pytest.raises(PassFailure, match=r"IR invalid after pass 'break-it' \(after: verify\)"):
        run_pipeline(ir, ("verify", "break-it"), verify_each=True)


def test_pipeline_timings_and_after_each():
    seen = []
    res = run_pipeline(lower(net_of(FOLD)), after_each=lambda name, ir: seen.append(name))
    assert seen == list(DEFAULT_PIPELINE)
    assert [n for n, _ in res.timings] == list(DEFAULT_PIPELINE)
    assert all(t >= 0 for _, t in res.timings)


def test_pass_needing_an_analysis_is_refused_before_anything_runs():
    seen: list[str] = []
    with pytest.raises(SmashError) as info:
        run_pipeline(lower(net_of(FOLD)), ("verify", "cse", "fold-trivial"), after_each=seen.append)
    (d,) = info.value.diagnostics
    assert (d.code, str(d.span)) == ("E0102", "<command line>:1:1")
    assert d.message == "pass 'fold-trivial' needs inferred shapes: run infer-shapes before it"
    assert seen == []


def test_analyses_the_input_carries_meet_needs():
    ir = shaped(net_of(FOLD))
    assert run_pipeline(ir, ("fold-trivial",)).ir is not ir
    with pytest.raises(SmashError):
        run_pipeline(lower(net_of(FOLD)), ("fold-trivial",))


def test_order_check_is_cached_per_pipeline():
    passes = resolve(TRAINING_PIPELINE)
    check_order.cache_clear()
    run_pipeline(lower(net_of(FOLD)), TRAINING_PIPELINE)
    run_pipeline(lower(net_of(FOLD)), list(TRAINING_PIPELINE))
    assert check_order.cache_info().misses == 1 and check_order.cache_info().hits == 1
    assert check_order.cache_parameters()["maxsize"] is not None
    check_order(passes)  # an IR without analyses: the first pass provides what the rest need


# --- declarations ---------------------------------------------------------------------------------


def test_training_pipeline_is_the_default_pipeline_trimmed():
    assert TRAINING_NEEDS == ("shapes",)
    assert TRAINING_PIPELINE == trim(DEFAULT_PIPELINE, TRAINING_NEEDS)
    assert TRAINING_PIPELINE == (
        "infer-shapes",
        "remove-zero-reads",
        "fold-trivial",
        "remove-dead-writes",
        "canonicalize",
        "cse",
    )
    check_order(resolve(TRAINING_PIPELINE))


def test_trim_follows_its_three_rules():
    """docs/ir.md: trim drops checks, analyses whose results are still valid, and analyses
    whose results nothing after them needs; rewrites always stay."""
    assert trim(("verify", "canonicalize", "verify"), ()) == ("canonicalize",)
    # still valid: every normalisation pass keeps shapes
    assert trim(("infer-shapes", "cse", "infer-shapes"), ("shapes",)) == ("infer-shapes", "cse")
    # not needed: by the backend, or by a later pass
    assert trim(("infer-shapes", "cse", "recognize-patterns"), ("shapes",)) == (
        "infer-shapes",
        "cse",
    )
    assert trim(("infer-shapes", "canonicalize"), ()) == ("canonicalize",)
    assert trim(("infer-shapes", "fold-trivial"), ()) == ("infer-shapes", "fold-trivial")
    # a backend that reads patterns keeps the recognition after the last rewrite
    both = trim(DEFAULT_PIPELINE, ("shapes", "patterns"))
    assert both == (*TRAINING_PIPELINE, "recognize-patterns")
    # recognition before a rewrite is invalidated by it, so it is no use to the backend
    assert trim(("recognize-patterns", "cse"), ("patterns",)) == ("cse",)


def test_declared_kinds_and_invalidations():
    kinds = {name: p.kind for name, p in PASSES.items()}
    assert kinds["verify"] == "check"
    assert kinds["infer-shapes"] == kinds["recognize-patterns"] == "analysis"
    assert all(kinds[n] == "rewrite" for n in NORMALISATION)
    for name in NORMALISATION:  # each updates the shapes of what it changes
        assert PASSES[name].invalidates == ("patterns",)
    assert {n for n, p in PASSES.items() if p.needs} == {"remove-zero-reads", "fold-trivial"}


@pytest.mark.parametrize("name", sorted(PASSES))
def test_declarations_hold(name):
    """A pass runs without the analyses it does not declare it needs, a check or analysis
    leaves the graph alone, an analysis sets what it provides, and what a rewrite keeps is
    still right (verify re-derives the shapes)."""
    p = PASSES[name]
    for src in CASES.values():
        bare = lower(net_of(src))
        if not p.needs:
            p(bare)  # no MissingAnalysis
        ir = shaped(net_of(src))
        out = p(ir)
        if p.kind != "rewrite":
            assert out.graph is ir.graph
        for a in p.provides:
            assert getattr(out, a) is not None
        if "shapes" in p.keeps:
            assert out.shapes is not None and verify.check(out) == []


# --- an example pass, registered by the test ------------------------------------------------------


@pytest.fixture
def example_passes():
    """Registers ``widest-map`` (a tiny pass that needs shapes and counts its calls) and
    ``forget-shapes`` (a rewrite that keeps nothing); removes both afterwards."""
    calls: list[int] = []

    @register("widest-map", kind="check", needs=("shapes",))
    def widest_map(ir: IRGraph) -> IRGraph:
        calls.append(max(s.channels for s in ir.shape_map().values()))
        return ir

    @register("forget-shapes")
    def forget_shapes(ir: IRGraph) -> IRGraph:
        return ir.with_graph(ir.copy_graph(), shapes=None)

    yield calls
    del PASSES["widest-map"], PASSES["forget-shapes"]


def test_example_pass_runs_in_a_pipeline(example_passes):
    res = run_pipeline(lower(net_of(FOLD)), ("verify", "infer-shapes", "widest-map", "cse"))
    assert example_passes == [16]  # the conv(out=16) of layer 1
    assert [n for n, _ in res.timings] == ["verify", "infer-shapes", "widest-map", "cse"]
    assert PASSES["forget-shapes"].invalidates == ("shapes", "patterns")


def test_example_pass_with_unmet_need_is_refused(example_passes):
    seen: list[str] = []
    for names, message in (
        (
            ("verify", "widest-map"),
            "pass 'widest-map' needs inferred shapes: run infer-shapes before it",
        ),
        (
            ("infer-shapes", "forget-shapes", "widest-map"),
            "pass 'widest-map' needs inferred shapes, which 'forget-shapes' before it does not "
            "keep: run infer-shapes after 'forget-shapes'",
        ),
    ):
        with pytest.raises(SmashError) as info:
            run_pipeline(lower(net_of(FOLD)), names, after_each=lambda n, ir: seen.append(n))
        assert [d.message for d in info.value.diagnostics] == [message]
    assert seen == [] and example_passes == []
    run_pipeline(
        lower(net_of(FOLD)), ("infer-shapes", "forget-shapes", "infer-shapes", "widest-map")
    )
    assert example_passes == [16]  # the conv(out=16) of layer 1


def test_register_rejects_bad_declarations():
    with pytest.raises(ValueError, match="registered twice"):
        register("cse")(lambda ir: ir)
    with pytest.raises(ValueError, match="unknown analyses"):
        Pass("x", lambda ir: ir, needs=("liveness",))
    with pytest.raises(ValueError, match="provides nothing"):
        Pass("x", lambda ir: ir, kind="analysis")
    assert "x" not in PASSES


# --- CLI flags ------------------------------------------------------------------------------------


@pytest.fixture
def smash_file(tmp_path: Path) -> Path:
    f = tmp_path / "fold.smash"
    f.write_text(FOLD, encoding="utf-8")
    return f


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_verify_each_same_output(capsys, smash_file):
    code, plain, _ = run_cli(capsys, "compile", str(smash_file), "--emit", "ir")
    assert code == 0
    code, checked, err = run_cli(
        capsys, "compile", str(smash_file), "--emit", "ir", "--verify-each"
    )
    assert code == 0 and err == ""
    assert checked == plain == dump(run_pipeline(lower(net_of(FOLD))).ir)


def test_cli_print_ir_after_all(capsys, smash_file):
    code, out, _ = run_cli(capsys, "compile", str(smash_file), "--print-ir-after-all")
    assert code == 0
    heads = [line for line in out.splitlines() if line.startswith("// ----- IR after ")]
    assert heads == [f"// ----- IR after {name} -----" for name in DEFAULT_PIPELINE]
    sections = out.split("// ----- IR after ")[1:]
    assert "b_l0.read" in sections[0] and "b_l0.read" not in sections[-1]  # folded
    assert sections[-1].split("\n", 1)[1] == dump(run_pipeline(lower(net_of(FOLD))).ir)


def test_cli_time_passes(capsys, smash_file):
    code, out, err = run_cli(capsys, "compile", str(smash_file), "--time-passes")
    assert code == 0 and out == ""
    lines = err.splitlines()
    assert lines[0] == "pass timings:"
    assert [line.split()[0] for line in lines[1:]] == [*DEFAULT_PIPELINE, "total"]
    assert all(line.endswith(" ms") for line in lines[1:])


def test_cli_passes(capsys, smash_file):
    code, out, _ = run_cli(
        capsys, "compile", str(smash_file), "--passes", "verify, infer-shapes", "--emit", "ir"
    )
    assert code == 0
    assert out == dump(shaped(net_of(FOLD)))
    assert "b_l0.read" in out and "pattern=" not in out
    code, out, _ = run_cli(
        capsys, "compile", str(smash_file), "--passes", "verify,recognize-patterns", "--emit", "ir"
    )
    assert code == 0 and "pattern=custom(layers=2, banks=2)" in out and " : " not in out


def test_cli_unknown_pass(capsys, smash_file):
    code, out, err = run_cli(capsys, "compile", str(smash_file), "--passes", "verify,bogus")
    assert code == 1 and out == ""
    assert err.startswith("<command line>:1:1: error[E0102]: unknown pass 'bogus' (passes: ")


def test_cli_shape_error_is_located(capsys, tmp_path):
    f = tmp_path / "bad.smash"
    f.write_text(
        frame(
            """    block b {
        banks 1 x 8
        layer read 0 write 0 = conv(out=8, stride=2)
    }"""
        ),
        encoding="utf-8",
    )
    code, out, err = run_cli(capsys, "compile", str(f), "--emit", "ir")
    assert code == 1 and out == ""
    assert err.startswith(f"{f}:7:9: error[E0405]: bank 0 of block 'b' holds 8x6x6 values")


def test_cli_pass_without_its_precondition(capsys, smash_file):
    code, out, err = run_cli(
        capsys,
        "compile",
        str(smash_file),
        "--passes",
        "verify,fold-trivial",
        "--print-ir-after-all",
    )
    assert code == 1 and out == ""  # refused before verify ran
    assert err == (
        "<command line>:1:1: error[E0102]: pass 'fold-trivial' needs inferred shapes: "
        "run infer-shapes before it\n"
    )

"""The graph IR: golden dumps and reports of every example, deterministic node ids, and the
memory-bank oracle (run_network) agreeing with the IR evaluator (run_ir) before and after the
default pipeline, on every example and on hand-built snippets covering every op kind.

Goldens live in tests/golden_ir/; refresh them with ``SMASHC_UPDATE_GOLDENS=1``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import subprocess
import sys
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
from smashc.ir.graph import add_node, graph_operands
from smashc.ir.nodes import BankVersion, Concat, OpNode
from smashc.ops import names, op_kind
from smashc.passes import run_pipeline

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden_ir"
EXAMPLES = sorted((ROOT / "examples").glob("*.smash"))
SNIPPET_FILES = sorted((ROOT / "tests" / "snippets").glob("*.smash"))
UPDATE = os.environ.get("SMASHC_UPDATE_GOLDENS") == "1"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny float64 tensors: thread start-up costs more than the work (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def check_golden(path: Path, actual: str) -> None:
    """Byte-for-byte comparison with ``path``; rewritten instead when SMASHC_UPDATE_GOLDENS=1."""
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
        return
    if not path.exists():
        pytest.fail(f"missing golden {path}; create it with SMASHC_UPDATE_GOLDENS=1", pytrace=False)
    expected = path.read_bytes().decode("utf-8")
    if expected != actual:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                f"{path.relative_to(ROOT)} (golden)",
                "actual",
            )
        )
        pytest.fail(
            f"output differs from {path.name} (SMASHC_UPDATE_GOLDENS=1 refreshes it):\n{diff}",
            pytrace=False,
        )


def cli(capsys, monkeypatch, *argv: str) -> str:
    monkeypatch.chdir(ROOT)
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


# --- goldens --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_golden_ir(path, capsys, monkeypatch):
    out = cli(capsys, monkeypatch, "compile", str(path.relative_to(ROOT)), "--emit", "ir")
    check_golden(GOLDEN / f"{path.stem}.ir", out)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_golden_report(path, capsys, monkeypatch):
    out = cli(capsys, monkeypatch, "compile", str(path.relative_to(ROOT)), "--report")
    check_golden(GOLDEN / f"{path.stem}.report", out)


def test_no_stale_goldens():
    stems = {p.stem for p in EXAMPLES}
    stale = sorted(p.name for p in GOLDEN.glob("*") if p.stem not in stems)
    assert not stale, f"goldens without an example: {stale}"


# --- hand-built snippets covering every op kind ---------------------------------------------------

SNIPPETS = {
    # non-square / strided / biased conv, bn with eps, relu6, sums with an identity path,
    # leaky_relu, dilation, overwrite, multi-chunk writes with wrap-around, pools with padding
    "ops": """network ops {
    input 3 x 10 x 8
    classes 5
    stem { conv(out=8, kernel=(3, 5), stride=(2, 1), padding=(1, 2), bias=true)
        -> bn(eps=0.001, momentum=0.3) -> relu6 }
    block cells {
        banks 1 x 8, 4 x 4
        layer read 0 write 1, 2, 3, 4 = conv(out=8, kernel=1)
        layer read 1, 2 write 1 = sum { identity
                                      | bn -> leaky_relu(slope=0.2) -> conv(out=8, dilation=2)
                                      | conv(out=8, kernel=(1, 3), padding=(0, 1)) }
            -> conv(out=4, kernel=1, groups=4)
        layer read 3 overwrite 2, 4 = relu -> conv(out=4, kernel=3, groups=2)
        layer read 0..5 write 3, 1 = conv(out=12, kernel=1)
            -> maxpool(kernel=3, stride=1, padding=1) -> conv(out=8, kernel=1)
        layer read 4 overwrite 4 = leaky_relu
    }
    transition { maxpool(kernel=3, stride=2, padding=1) -> chanpad(out=32)
        -> avgpool(kernel=3, stride=1, padding=1) -> relu }
    block {
        banks 2 x 16, 2 x 8
        layer read 1 write 2, 3 = bn
            -> conv(out=16, kernel=3, stride=1, dilation=(1, 2), padding=(1, 2))
        layer read 0, 2, 3 write 0, 1 = conv(out=16, kernel=1)
        output 1..4
    }
    transition { avgpool(kernel=(2, 1), stride=(2, 1)) }
    head { bn -> relu -> gap -> linear(out=5, bias=false) }
}
""",
    # SMASH ops: c0 only, c0+c1, c0+c2, all four; groups, dilation, non-square kernels, acts
    "smash": """network sm {
    input 3 x 9 x 7
    classes 4
    stem { conv(out=16, kernel=1) }
    block s {
        banks 2 x 8, 4 x 8
        layer read 0 write 2 = smash(out=8)
        layer read 0, 2 write 3, 4 = smash(out=16, bottleneck=12,
            c0=conv(kernel=(3, 5), dilation=(2, 1), groups=4, act=relu6),
            c1=conv(kernel=(5, 1), act=identity))
        layer read 1, 3, 4 write 5, 1 = smash(out=8, bottleneck=8,
            c0=conv(kernel=1), c2=conv(kernel=3, dilation=2, groups=2, act=leaky_relu))
        layer read 0..6 write 2, 0, 5 = smash(out=16, bottleneck=24,
            c0=conv(kernel=3, groups=8), c1=conv(kernel=(1, 3), dilation=3),
            c2=conv(kernel=(3, 1), act=identity), c3=conv(kernel=5, groups=2, act=relu6))
        layer read 5 overwrite 5 = smash(out=8, c0=conv(kernel=7, dilation=1, act=leaky_relu))
    }
    head { gap -> linear(out=4) }
}
""",
}


def snippet_net(name: str) -> arch.Network:
    return expand(load_text(SNIPPETS[name], f"{name}.smash"))


def zero_read_net() -> arch.Network:
    """Hand-built as arch: reads of never-written banks (the front end rejects them)."""
    smash = arch.SmashOp(4, 8, (arch.SmashConv((3, 1)), None, arch.SmashConv(), None))
    return arch.Network(
        "zero_reads",
        (3, 6, 6),
        3,
        (
            arch.Stage("stem", "stem", (arch.Conv(8),)),
            arch.Block(
                "b",
                (4, 4, 4, 4),
                (
                    arch.Layer("l0", (0, 2), (2,), (arch.Act("relu6"), arch.Conv(4))),
                    arch.Layer("l1", (3, 1, 2), (3,), (smash,)),
                ),
                (0, 1, 2, 3),
            ),
            arch.Stage("head", "head", (arch.GlobalAvgPool(), arch.Linear(3))),
        ),
    )


NETWORK_IDS = (
    [f"example:{p.stem}" for p in EXAMPLES]
    + [f"snippet:{p.stem}" for p in SNIPPET_FILES]
    + [f"hand:{k}" for k in SNIPPETS]
    + ["hand:zero_reads"]
)


def network_by_id(key: str) -> arch.Network:
    kind, name = key.split(":", 1)
    if kind == "example":
        return expand(load_file(ROOT / "examples" / f"{name}.smash"))
    if kind == "snippet":
        return expand(load_file(ROOT / "tests" / "snippets" / f"{name}.smash"))
    return zero_read_net() if name == "zero_reads" else snippet_net(name)


def small(net: arch.Network) -> arch.Network:
    """The network at a small spatial size (8 or 16 px) when its shapes allow, else as declared."""
    c, h, w = net.input
    for side in (8, 16):
        if side >= min(h, w):
            break
        candidate = dataclasses.replace(net, input=(c, side, side))
        try:
            run_pipeline(lower(candidate), ("infer-shapes",))
        except SmashError:
            continue
        return candidate
    return net


# --- oracle agreement -----------------------------------------------------------------------------


def sliced_store(before: IRGraph, after: IRGraph, store: WeightStore) -> WeightStore:
    """``store``'s weights for ``after``: where remove-zero-reads shrank a conv's or SMASH op's
    input, drop the weight columns of the all-zero banks it no longer reads."""
    out = WeightStore(store.seed, store.dtype)
    out.tensors = {k: dict(v) for k, v in store.tensors.items()}
    for n in after.graph:
        p = after.payload(n)
        if not (isinstance(p, OpNode) and isinstance(p.op, arch.Conv | arch.SmashOp)):
            continue
        cin_after = after.shape(after.operands(n)[0]).channels
        cin_before = before.shape(before.operands(n)[0]).channels
        if cin_after == cin_before:
            continue
        src = before.operands(n)[0]
        while not isinstance(before.payload(src), Concat):  # through zero-preserving activations
            src = before.operands(src)[0]
        keep: list[int] = []
        offset = 0
        for o in before.operands(src):
            width = before.shape(o).channels
            zero = isinstance(before.payload(o), BankVersion) and not before.operands(o)
            if not zero:
                keep += range(offset, offset + width)
            offset += width
        assert len(keep) == cin_after
        key = "weight" if isinstance(p.op, arch.Conv) else "w1x1"
        out.tensors[n][key] = store.tensors[n][key][:, keep]
    return out


def assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    assert torch.allclose(a, b, rtol=1e-9, atol=1e-10), (a - b).abs().max().item()


@pytest.mark.parametrize("key", NETWORK_IDS)
def test_oracle_agrees_with_ir(key):
    net = small(network_by_id(key))
    c, h, w = net.input
    x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    store = WeightStore(seed=2)
    ref = run_network(net, x, store)
    assert ref.shape == (2, net.classes) and torch.isfinite(ref).all()
    lowered = run_pipeline(lower(net), ("infer-shapes",)).ir
    assert_close(run_ir(lowered, x, store), ref)
    final = run_pipeline(lower(net)).ir
    assert_close(run_ir(final, x, sliced_store(lowered, final, store)), ref)


def test_zero_reads_are_removed_and_weights_sliced():
    net = zero_read_net()
    # both reads of zero banks feed a groups=1 conv / SMASH op, so no zero bank survives
    lowered = run_pipeline(lower(net), ("infer-shapes",)).ir
    removed = run_pipeline(lowered, ("remove-zero-reads",)).ir
    assert removed.operands("l0.read") == ["b.bank0.v0"]
    assert removed.operands("l1.read") == ["b.bank1.v0", "b.bank2.v1"]
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    store = WeightStore(seed=4)
    ref = run_network(net, x, store)
    assert_close(run_ir(removed, x, sliced_store(lowered, removed, store)), ref)


def test_snippets_cover_every_op_kind():
    seen: set = set()

    def walk(ops):
        for op in ops:
            seen.add(op_kind(op))
            if isinstance(op, arch.Sum):
                for p in op.paths:
                    walk(p)
            if isinstance(op, arch.SmashOp):
                seen.update(f"c{i}" for i, c in enumerate(op.convs) if c is not None)

    modes = set()
    wraps = False
    for name in SNIPPETS:
        for st in snippet_net(name).stages:
            if isinstance(st, arch.Block):
                for lay in st.layers:
                    walk(lay.ops)
                    modes.add(lay.mode)
                    wraps |= len(lay.writes) > 1
            else:
                walk(st.ops)
    kinds = {*names(), "sum", "c0", "c1", "c2", "c3"}  # every registered op
    assert kinds <= seen
    assert modes == {"write", "overwrite"} and wraps


# --- determinism ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", NETWORK_IDS)
def test_lowering_is_deterministic(key):
    net = network_by_id(key)
    first, second = lower(net), lower(network_by_id(key))
    assert dump(first) == dump(second)
    assert list(first.graph.nodes) == list(second.graph.nodes)
    assert sorted(first.graph.edges(data=True)) == sorted(second.graph.edges(data=True))
    assert dump(run_pipeline(first).ir) == dump(run_pipeline(lower(net)).ir)


def test_node_ids_follow_the_naming_scheme():
    ir = lower(snippet_net("ops"))
    ids = set(ir.graph)
    expected = {
        "input",
        "output",
        "stem.0conv",
        "stem.2relu6",
        "cells.in0",
        "cells.bank0.v0",
        "cells.bank1.v0",
        "cells.bank1.v1",
        "cells_l0.read",
        "cells_l0.0conv",
        "cells_l0.chunk0",
        "cells_l0.chunk1",
        "cells_l1.0sum",
        "cells_l1.0sum.p0.0identity",
        "cells_l1.0sum.p1.1leaky_relu",
        "cells_l1.1conv",
        "cells.out",
        "transition1.1chanpad",
        "block1.bank3.v1",
        "head.3linear",
    }
    assert expected <= ids
    # wrap-around: banks 1..4 get chunks 0, 1, 0, 1
    assert [ir.operands(f"cells.bank{b}.v1")[1] for b in (1, 2, 3, 4)] == [
        "cells_l0.chunk0",
        "cells_l0.chunk1",
        "cells_l0.chunk0",
        "cells_l0.chunk1",
    ]
    assert ir.operands("cells.bank2.v2") == ["cells_l2.1conv"]  # overwrite: one operand


def test_dump_is_the_same_in_other_processes():
    """Hash randomisation must not change ids or order: dump in two fresh interpreters."""
    files = [str(p) for p in EXAMPLES + SNIPPET_FILES]
    code = (
        "import sys\n"
        "from smashc.pipeline import compile_file\n"
        "from smashc.ir import dump\n"
        "for f in sys.argv[1:]:\n"
        "    sys.stdout.write(dump(compile_file(f)))\n"
    )
    here = "".join(dump(run_pipeline(lower(expand(load_file(f)))).ir) for f in files)
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code, *files],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=True,
        ).stdout
        assert out == here


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_lowering_builds_what_networkx_would(path):
    """``add_node`` writes the adjacency dicts directly: the same graph as rebuilding the
    lowered one with networkx's add_node and add_edge, and one that networkx can rewrite."""
    g = lower(expand(load_file(path))).graph
    slow = nx.DiGraph()
    for n, data in g.nodes(data=True):
        slow.add_node(n, **data)
        for src in graph_operands(g, n):
            slow.add_edge(src, n, **g.edges[src, n])
    assert list(g.nodes(data=True)) == list(slow.nodes(data=True))
    assert list(g.edges(data=True)) == list(slow.edges(data=True))
    for n in g:
        assert list(g.pred[n].items()) == list(slow.pred[n].items())
    u, v = next(iter(g.edges))
    g.remove_node(u)
    assert u not in g.pred[v] and not g.has_edge(u, v)


def test_add_node_refuses_duplicates_and_unknown_operands():
    g = nx.DiGraph()
    add_node(g, "a", None, [])
    with pytest.raises(ValueError, match="duplicate"):
        add_node(g, "a", None, [])
    with pytest.raises(ValueError, match="not in the graph"):
        add_node(g, "b", None, ["a", "c"])
    assert list(g) == ["a"]


def _smallest_topological_order(g: nx.DiGraph) -> list[str]:
    created = {n: i for i, n in enumerate(g)}
    return list(nx.lexicographical_topological_sort(g, key=created.__getitem__))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_node_order_is_the_smallest_topological_order(path):
    """``nodes()`` is networkx's lexicographical topological sort keyed by creation, both
    when the creation order is topological (lowered and rewritten graphs) and when it is
    not (the same graph with its nodes created in reverse)."""
    ir = lower(expand(load_file(path)))
    for g in (ir.graph, run_pipeline(ir).ir.graph):
        assert list(ir.with_graph(g).nodes()) == _smallest_topological_order(g)
        backwards = nx.DiGraph()
        backwards.add_nodes_from(reversed(list(g.nodes(data=True))))
        backwards.add_edges_from(g.edges(data=True))
        order = list(ir.with_graph(backwards).nodes())
        assert order == _smallest_topological_order(backwards) != list(backwards)

"""Pattern recognition (recognize-patterns): stdlib templates and hand-written equivalents are
labelled with their family and parameters; near misses are ``custom``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smashc.backends.interpreter import WeightStore, run_ir, run_network
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_file, load_text
from smashc.ir import Pattern, lower
from smashc.passes import DEFAULT_PIPELINE, run_pipeline
from smashc.passes.recognize import access_graph

UNNORMALISED = ("verify", "recognize-patterns")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny float64 tensors: thread start-up costs more than the work (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def network(block: str, stem_out: int = 8, prelude: str = "import std") -> str:
    return f"""{prelude}
network r {{
    input 3 x 8 x 8
    classes 4
    stem {{ conv(out={stem_out}) }}
{block}
    head {{ gap -> linear(out=4) }}
}}
"""


def patterns(src: str, passes=DEFAULT_PIPELINE) -> dict[str, Pattern]:
    ir = run_pipeline(lower(expand(load_text(src, "r.smash"))), passes).ir
    return dict(ir.patterns)


def recognised(src: str, block: str = "b") -> Pattern:
    """The block's pattern after the default pipeline; the unnormalised IR must agree."""
    after = patterns(src)[block]
    assert patterns(src, UNNORMALISED)[block] == after
    return after


def P(family: str, **params: int) -> Pattern:  # noqa: N802
    return Pattern(family, tuple(params.items()))


def custom(layers: int, banks: int) -> Pattern:
    return P("custom", layers=layers, banks=banks)


# --- stdlib templates -----------------------------------------------------------------------------


@pytest.mark.parametrize("width", [8, 16])
@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_resnet_block(layers, width):
    src = network(f"    block b = resnet_block({layers}, {width})", stem_out=width)
    assert recognised(src) == P("resnet", depth=layers, width=width)


@pytest.mark.parametrize("width", [8, 16])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_resnet_postact_block(layers, width):
    src = network(f"    block b = resnet_postact_block({layers}, {width})", stem_out=width)
    assert recognised(src) == P("resnet", depth=layers, width=width)


@pytest.mark.parametrize("layers", [1, 2])
def test_bottleneck_block(layers):
    src = network(f"    block b = bottleneck_block({layers}, 4)", stem_out=16)
    assert recognised(src) == P("resnet", depth=layers, width=16)


@pytest.mark.parametrize("layers", [1, 2])
def test_mobilenet_block(layers):
    src = network(f"    block b = mobilenet_block({layers}, 8, expansion=2)", stem_out=8)
    assert recognised(src) == P("resnet", depth=layers, width=8)


@pytest.mark.parametrize("bottleneck", [4, 0])
@pytest.mark.parametrize("growth", [4, 12])
@pytest.mark.parametrize("layers", [1, 2, 3, 4, 5, 6])
def test_dense_block(layers, growth, bottleneck):
    src = network(f"    block b = dense_block({layers}, {growth}, bottleneck={bottleneck})")
    assert recognised(src) == P("densenet", depth=layers, growth=growth)


@pytest.mark.parametrize("width", [8, 12])
@pytest.mark.parametrize("columns", [2, 3, 4])
def test_fractal_block(columns, width):
    src = network(f"    block b = fractal_block({columns}, {width})")
    assert recognised(src) == P("fractalnet", columns=columns, width=width)


def test_several_blocks_in_one_network():
    src = network(
        """    block a = dense_block(3, 4)
    transition { conv(out=8, kernel=1) }
    block b = fractal_block(2, 8)
    block c = resnet_block(2, 8)
    block d {
        banks 2 x 4
        layer read 0, 1 write 0, 1 = conv(out=8)
    }"""
    )
    assert patterns(src) == {
        "a": P("densenet", depth=3, growth=4),
        "b": P("fractalnet", columns=2, width=8),
        "c": P("resnet", depth=2, width=8),
        "d": custom(1, 2),
    }


# --- hand-written equivalents (no templates) ------------------------------------------------------

PREACT = "bn -> relu -> conv(out=8)"


def test_handwritten_resnet():
    body = "\n".join(f"        layer read 0 write 0 = {PREACT} -> {PREACT}" for _ in range(3))
    src = network(f"    block b {{\n        banks 1 x 8\n{body}\n    }}", prelude="")
    assert recognised(src) == P("resnet", depth=3, width=8)


def test_handwritten_postact_resnet():
    unit = """        layer read 0 write 0 = conv(out=8) -> bn -> relu -> conv(out=8) -> bn
        layer read 0 overwrite 0 = relu"""
    src = network(f"    block b {{\n        banks 1 x 8\n{unit}\n{unit}\n    }}", prelude="")
    assert recognised(src) == P("resnet", depth=2, width=8)


def dense_layers(layers: int, inputs: int, reads=None, op: str = PREACT.replace("8", "4")) -> str:
    """A DenseNet block written layer by layer with explicit read lists."""
    lines = []
    for i in range(layers):
        r = list(range(inputs + i)) if reads is None else reads(i)
        lines.append(f"        layer read {', '.join(map(str, r))} write {inputs + i} = {op}")
    body = "\n".join(lines)
    return f"    block b {{\n        banks {inputs} x {8 // inputs}, {layers} x 4\n{body}\n    }}"


def test_handwritten_densenet():
    src = network(dense_layers(5, 1), prelude="")
    assert recognised(src) == P("densenet", depth=5, growth=4)


def test_handwritten_densenet_reads_in_another_order():
    src = network(dense_layers(4, 1, reads=lambda i: list(range(i, -1, -1))), prelude="")
    assert recognised(src) == P("densenet", depth=4, growth=4)


def test_handwritten_densenet_two_input_banks():
    src = network(dense_layers(3, 2), prelude="")
    assert recognised(src) == P("densenet", depth=3, growth=4)


# FractalNet, 3 columns, 4 rows: (name, reads, writes) in the stdlib template's order.
FRACTAL = [
    ("c0t0", 0, 4),
    ("c1t0", 0, 2),
    ("c2t0", 0, 1),
    ("c2t1", 1, 2),
    ("c1t2", 2, 4),
    ("c2t2", 2, 3),
    ("c2t3", 3, 4),
]


def fractal(layers, unit: str = "conv(out=8) -> bn -> relu") -> str:
    body = "\n".join(f"        layer {n} read {r} write {w} = {unit}" for n, r, w in layers)
    return network(
        f"    block b {{\n        banks 1 x 8, 4 x 8\n{body}\n        output 4\n    }}", prelude=""
    )


def by_name(*names: str):
    table = {n: (n, r, w) for n, r, w in FRACTAL}
    return [table[n] for n in names]


def same_function(src_a: str, src_b: str) -> None:
    """Two sources with the same layer names compute the same function (memory-bank oracle)."""
    na, nb = (expand(load_text(s, "r.smash")) for s in (src_a, src_b))
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = run_network(na, x, WeightStore(5))
    b = run_network(nb, x, WeightStore(5))
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    ir = run_pipeline(lower(nb)).ir
    assert torch.allclose(run_ir(ir, x, WeightStore(5)), a, rtol=1e-10, atol=1e-12)


def test_handwritten_fractal():
    assert recognised(fractal(FRACTAL)) == P("fractalnet", columns=3, width=8)


def test_handwritten_fractal_rows_in_another_order():
    """Layers reading the same join swapped (each join still receives its writes in order)."""
    order = by_name("c2t0", "c1t0", "c0t0", "c2t1", "c2t2", "c1t2", "c2t3")
    same_function(fractal(FRACTAL), fractal(order))
    assert recognised(fractal(order)) == P("fractalnet", columns=3, width=8)


@pytest.mark.parametrize(
    "order",
    [
        ("c1t0", "c2t0", "c2t1", "c1t2", "c2t2", "c2t3", "c0t0"),  # longest column last
        ("c2t0", "c2t1", "c1t0", "c2t2", "c2t3", "c1t2", "c0t0"),  # deepest path first
    ],
)
def test_handwritten_fractal_joins_written_in_another_order(order):
    src = fractal(by_name(*order))
    same_function(fractal(FRACTAL), src)  # a valid order: the same network
    assert recognised(src) == P("fractalnet", columns=3, width=8)


def test_handwritten_preact_fractal_without_cse():
    src = fractal(FRACTAL, unit="relu -> conv(out=8)")
    no_cse = tuple(p for p in DEFAULT_PIPELINE if p != "cse")
    assert patterns(src, no_cse)["b"] == P("fractalnet", columns=3, width=8)
    assert patterns(src, UNNORMALISED)["b"] == P("fractalnet", columns=3, width=8)


def test_handwritten_preact_fractal():
    src = fractal(FRACTAL, unit="relu -> conv(out=8)")
    assert recognised(src) == P("fractalnet", columns=3, width=8)


# --- near misses ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layer,skipped", [(1, 0), (2, 1), (3, 0), (3, 3)])
def test_densenet_with_one_skipped_read_is_custom(layer, skipped):
    def reads(i):
        r = list(range(1 + i))
        if i == layer:
            r.remove(skipped)
        return r

    src = network(dense_layers(4, 1, reads=reads), prelude="")
    assert recognised(src) == custom(4, 5)


@pytest.mark.parametrize(
    "moved",
    [
        ("c1t0", 0, 3),  # writes the join at depth 3 instead of 2
        ("c2t1", 1, 3),  # writes the join at depth 3 instead of 2
        ("c1t2", 1, 4),  # reads the join at depth 1 instead of 2
    ],
)
def test_fractal_with_one_join_edge_moved_is_custom(moved):
    layers = [moved if n == moved[0] else (n, r, w) for n, r, w in FRACTAL]
    assert recognised(fractal(layers)) == custom(7, 5)


def test_resnet_like_block_writing_a_second_bank_is_custom():
    src = network(
        f"""    block b {{
        banks 2 x 8
        layer read 0 write 0 = {PREACT} -> {PREACT}
        layer read 0 write 0, 1 = {PREACT} -> {PREACT.replace("8", "16")}
        layer read 0 write 0 = {PREACT} -> {PREACT}
    }}""",
        prelude="",
    )
    # the block input fills bank 0 only when the stem is 8 wide; bank 1 starts empty
    assert recognised(src) == custom(3, 2)


def test_resnet_like_block_with_a_weighted_overwrite_is_custom():
    src = network(
        f"""    block b {{
        banks 1 x 8
        layer read 0 write 0 = {PREACT} -> {PREACT}
        layer read 0 overwrite 0 = bn
    }}""",
        prelude="",
    )
    assert recognised(src) == custom(2, 1)


def test_access_graph_of_a_dense_block():
    src = network("    block b = dense_block(2, 4, bottleneck=0)")
    ir = run_pipeline(lower(expand(load_text(src, "r.smash")))).ir
    g = access_graph(ir, "b")
    kinds = sorted(k for _, k in g.nodes(data="kind"))
    assert kinds == ["input", "layer", "layer", "version", "version"]
    edges = sorted((u[1], v[1], k) for u, v, k in g.edges(data="kind"))
    assert edges == [
        ("b.bank0.v0", "b_l0", "read"),
        ("b.bank0.v0", "b_l1", "read"),
        ("b.bank1.v1", "b_l1", "read"),
        ("b_l0", "b.bank1.v1", "write"),
        ("b_l1", "b.bank2.v1", "write"),
    ]


# --- the bundled examples ------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.smash"))
FAMILY = {
    "resnet_block": "resnet",
    "resnet_postact_block": "resnet",
    "bottleneck_block": "resnet",
    "mobilenet_block": "resnet",
    "dense_block": "densenet",
    "fractal_block": "fractalnet",
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_template_blocks_are_recognised(path):
    """Every template block is labelled with its template's family, normalised or not; the
    hand-written SMASH-space blocks are custom."""
    lowered = lower(expand(load_file(path)))
    final = run_pipeline(lowered).ir
    assert run_pipeline(lowered, UNNORMALISED).ir.patterns == final.patterns
    for b in final.blocks:
        want = FAMILY.get(b.template, "custom")
        assert final.patterns[b.name].family == want, (b.name, b.template)


# --- the structural DenseNet test against VF2 ------------------------------------------------


def _random_block(rng, inputs: int, layers: int) -> str:
    """A valid block of ``inputs`` input banks and ``layers`` layers with random reads of
    banks holding something and random writes (fresh or adding), often DenseNet-like."""
    filled = list(range(inputs))
    lines = []
    for i in range(layers):
        if rng.random() < 0.5:  # the DenseNet read set where it is filled, else all filled
            dense = set(range(inputs + i))
            reads = sorted(dense) if dense <= set(filled) else list(filled)
        else:
            reads = rng.sample(filled, rng.randint(1, len(filled)))
        rng.shuffle(reads)
        write = inputs + i if rng.random() < 0.7 else rng.randrange(inputs, inputs + layers)
        lines.append(
            f"        layer read {', '.join(map(str, sorted(set(reads))))} write {write}"
            " = conv(out=4)"
        )
        if write not in filled:
            filled.append(write)
    body = "\n".join(lines)
    return (
        f"    block b {{\n        banks {inputs} x 4, {layers} x 4\n{body}\n"
        f"        output {', '.join(map(str, filled))}\n    }}"
    )


def test_structural_densenet_test_agrees_with_vf2():
    """On a few hundred random small blocks, the linear-time DenseNet test says yes exactly
    where VF2 finds the block's access graph isomorphic to the canonical DenseNet's."""
    import random

    from smashc.frontend.expand import expand as expand_program
    from smashc.passes.recognize import _canonical, _densenet, _same_shape

    rng = random.Random(0)
    seen = {True: 0, False: 0}
    for _ in range(300):
        inputs, layers = rng.randint(1, 2), rng.randint(1, 5)
        src = network(_random_block(rng, inputs, layers), stem_out=4 * inputs, prelude="")
        ir = run_pipeline(lower(expand_program(load_text(src, "r.smash")))).ir
        (info,) = ir.blocks
        g = access_graph(ir, "b")
        dense = [(tuple(range(inputs + i)), inputs + i) for i in range(layers)]
        canonical = _canonical(info.banks, dense, range(inputs + layers), inputs)
        vf2 = len(set(info.banks[inputs:])) == 1 and _same_shape(g, canonical)
        assert (_densenet(info, g) is not None) == vf2, src
        seen[vf2] += 1
    assert seen[True] > 30 and seen[False] > 30  # both answers are exercised

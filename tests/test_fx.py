"""The torch.fx backends against the memory-bank oracle (smashc.backends.interpreter.run_network).

Free weights (``to_fx``): the module's parameters are copied from a WeightStore and its
output must equal the oracle's, for every example and 200 sampled SMASH-space nets.
HyperNet weights (``to_fx_hyper``): the oracle runs on weights written from the documented
slicing rules (tests/smash_space.hyper_store) and must agree with ``forward(x, w)``.
Also: ShapeProp shapes equal the IR's inferred shapes, layer names survive into
``gm.code``, the graphs lint, and gradients reach the shared weights and generated matrices.
"""

from __future__ import annotations

import functools

import pytest
import torch
from smash_space import (
    CASES,
    CORNERS,
    case_id,
    check_fx_against_oracle,
    encoding_config,
    example_files,
    example_ir,
    example_net,
    hyper_store,
    is_smash_space,
    one_thread,  # noqa: F401 (autouse)
    oracle_input,
    random_hypernet_output,
    randomise_shared,
    sampled,
    source_block_names,
    source_layer_names,
)

from smashc import arch
from smashc.backends.encoding import encode, op_weights
from smashc.backends.fx import py_name, to_fx
from smashc.backends.hyperfx import SharedWeights, to_fx_hyper
from smashc.backends.interpreter import run_network
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_text
from smashc.ir import dump
from smashc.ir.nodes import OpNode
from smashc.pipeline import compile_text

EXAMPLES = example_files()
SMASH_EXAMPLES = [p for p in EXAMPLES if p.name.startswith("smash_")]


# --- examples -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_matches_oracle(path):
    check_fx_against_oracle(example_ir(path), example_net(path), seed=1)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_code_names_layers(path):
    ir = example_ir(path)
    gm = to_fx(ir)
    live = {ir.payload(n).layer for n in ir.graph if isinstance(ir.payload(n), OpNode)}
    for name in source_layer_names(path):
        if name in live:
            assert py_name(name) in gm.code, name
    for name in source_block_names(path):
        assert f"{py_name(name)}_" in gm.code, name
    for st in ir.stages:
        for layer in st.layers:
            if layer in live:
                assert py_name(layer) in gm.code, layer


@pytest.mark.parametrize("path", SMASH_EXAMPLES, ids=lambda p: p.stem)
def test_smash_example_hyper_matches_oracle(path):
    ir = example_ir(path)
    assert is_smash_space(ir)
    cfg = encoding_config(ir)
    torch.manual_seed(0)
    shared = randomise_shared(SharedWeights(cfg).double().eval())
    enc = encode(ir, cfg)
    mats = op_weights(random_hypernet_output(enc), enc)
    gm = to_fx_hyper(ir, shared, enc).eval()
    gm.graph.lint()
    x = oracle_input(ir)
    y = gm(x, mats)
    expected = run_network(example_net(path), x, hyper_store(ir, shared, enc, mats))
    assert y.shape == (2, ir.classes)
    assert torch.allclose(y, expected), (y - expected).abs().max()


def test_corner_cases_match_oracle():
    ir = compile_text(CORNERS)
    net = expand(load_text(CORNERS))
    assert {lay.name for b in net.blocks for lay in b.layers} >= {"unsorted", "dead", "over"}
    gm = check_fx_against_oracle(ir, net, seed=5)
    for name in ("unsorted", "grid", "wrap", "fresh", "over", "l0"):
        assert name in gm.code, name


# After a linear layer the free-weights backend carries values flattened to (N, C) and
# reshapes them back to (N, C, 1, 1) before a spatial op; only linear and activations keep
# that mark, so a sum's join, a block's slices/concats/bank adds, or a gap lose it.
FLAT = "network f { input 3 x 8 x 8 classes 5 stem { STEM } BODY head { HEAD } }"
FLAT_CASES = {
    "sum-then-bn": (
        "conv(out=4)",
        "",
        "gap -> sum { linear(out=6) | linear(out=6) } -> bn -> linear(out=5)",
    ),
    "sum-then-conv": (
        "conv(out=4)",
        "",
        "gap -> sum { linear(out=6) | identity -> linear(out=6) } -> conv(out=5, kernel=1)",
    ),
    "gap-after-linear": ("conv(out=4)", "", "gap -> linear(out=6) -> gap -> linear(out=5)"),
    "block-after-linear": (
        "gap -> linear(out=8)",
        "block b { banks 2 x 4, 1 x 4 layer read 0 write 2 = conv(out=4, kernel=1) "
        "layer read 1, 2 write 0, 1 = relu -> bn }",
        "linear(out=5)",
    ),
}


@pytest.mark.parametrize("name", list(FLAT_CASES))
def test_flat_values_after_linear(name):
    stem, body, head = FLAT_CASES[name]
    text = FLAT.replace("STEM", stem).replace("BODY", body).replace("HEAD", head)
    ir = compile_text(text)  # the front end and the passes accept it
    check_fx_against_oracle(ir, expand(load_text(text)), seed=0)


def test_flat_values_that_work():
    """The same situations where the flat mark survives (linear, act, spatial ops)."""
    for head in (
        "gap -> linear(out=7) -> relu -> bn -> conv(out=6, kernel=1) -> identity "
        "-> chanpad(out=8) -> leaky_relu -> linear(out=5, bias=false)",
        "gap -> sum { linear(out=6) | linear(out=6) } -> relu6 -> linear(out=5)",
        "gap -> linear(out=6) -> avgpool(kernel=1) -> linear(out=5)",
        "gap -> linear(out=6) -> smash(out=8, bottleneck=8, c0=conv(kernel=1)) -> linear(out=5)",
    ):
        text = FLAT.replace("STEM", "conv(out=4)").replace("BODY", "").replace("HEAD", head)
        check_fx_against_oracle(compile_text(text), expand(load_text(text)), seed=0)


def test_layer_names_that_collide_after_py_name():
    text = (
        "network f { input 3 x 8 x 8 classes 5 stem { conv(out=4) } block b { banks 1 x 4 "
        "layer l read 0 write 0 = sum { conv(out=4) | conv(out=4, kernel=1) } "
        "layer l_0sum_p0 read 0 write 0 = conv(out=4) } head { gap -> linear(out=5) } }"
    )
    ir = compile_text(text)
    convs = [n for n in ir.graph if isinstance(ir.payload(n), OpNode) and "conv" in n]
    assert len(convs) == 4
    gm = to_fx(ir)
    assert len([m for m in gm.modules() if isinstance(m, torch.nn.Conv2d)]) == 4


# --- 200 sampled SMASH-space architectures ---------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_sampled_fx_matches_oracle(case):
    s = sampled(*case)
    gm = check_fx_against_oracle(s.ir, s.net, seed=case[0], shapes=case[0] % 4 == 0)
    for b in s.net.blocks:
        for layer in b.layers:
            assert py_name(layer.name) in gm.code


@pytest.mark.parametrize("case", CASES[::13], ids=case_id)
def test_sampled_text_compiles_at_small_input(case):
    """The printed .smash of a sampled net goes through the front end to the same network
    and the same IR; its blocks run at 8, 4 and 2 px."""
    s = sampled(*case)
    text = s.text()
    assert expand(load_text(text)) == s.net
    ir = compile_text(text)
    assert dump(ir) == dump(s.ir)
    sizes = [
        {
            (ir.shape(n).height, ir.shape(n).width)
            for n in ir.graph
            if getattr(ir.payload(n), "stage", None) == b.name
        }
        for b in ir.blocks
    ]
    assert sizes == [{(8, 8)}, {(4, 4)}, {(2, 2)}]


@functools.cache
def _shared(variable_ops: bool) -> SharedWeights:
    torch.manual_seed(1234)
    return randomise_shared(SharedWeights(sampled(0, 1.0, variable_ops).config).double().eval())


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_sampled_hyper_matches_oracle(case):
    seed, _, variable, _ = case
    s = sampled(*case)
    shared = _shared(variable)
    enc = encode(s.ir, s.config)
    mats = op_weights(random_hypernet_output(enc, seed), enc)
    gm = to_fx_hyper(s.ir, shared, enc).eval()
    gm.graph.lint()
    x = oracle_input(s.ir, seed)
    with torch.no_grad():
        y = gm(x, mats)
        expected = run_network(s.net, x, hyper_store(s.ir, shared, enc, mats))
    assert y.shape == (2, s.ir.classes)
    assert torch.allclose(y, expected), (y - expected).abs().max()
    assert not torch.allclose(y[0], y[1])


def test_sampled_hyper_encodes_when_no_encoding_given():
    s = sampled(3, 1.0, True)
    shared = _shared(True)
    enc = encode(s.ir, s.config)
    mats = op_weights(random_hypernet_output(enc, 3), enc)
    x = oracle_input(s.ir, 3)
    with torch.no_grad():
        a = to_fx_hyper(s.ir, shared).eval()(x, mats)
        b = to_fx_hyper(s.ir, shared, enc).eval()(x, mats)
    assert torch.equal(a, b)


def test_sampled_hyper_order_of_generated_matrices():
    """The k-th matrix feeds the op of enc.slots[k], weight-normalised: scaling each matrix
    changes nothing, swapping two matrices of the same shape changes the output."""
    s = sampled(7, 1.0, False)
    shared = _shared(False)
    enc = encode(s.ir, s.config)
    mats = op_weights(random_hypernet_output(enc, 7), enc)
    gm = to_fx_hyper(s.ir, shared, enc).eval()
    x = oracle_input(s.ir, 7)
    with torch.no_grad():
        y = gm(x, mats)
        scaled = [m * (k + 2.0) for k, m in enumerate(mats)]
        assert torch.allclose(gm(x, scaled), y)
        swapped = list(mats)
        same = [k for k in range(1, len(mats)) if mats[k].shape == mats[0].shape]
        assert same
        swapped[0], swapped[same[0]] = mats[same[0]], mats[0]
        assert not torch.allclose(gm(x, swapped), y)


@pytest.mark.parametrize(
    "case", [(11, 1.0, False, 1.0), (12, 0.5, True, 0.5), (13, 1.0, True, 1.0)], ids=case_id
)
def test_hyper_gradients_reach_shared_and_generated(case):
    seed, _, variable, _ = case
    s = sampled(*case)
    torch.manual_seed(seed)
    shared = randomise_shared(SharedWeights(s.config).double()).train()
    enc = encode(s.ir, s.config)
    out = random_hypernet_output(enc, seed).requires_grad_()
    mats = [m.detach().clone().requires_grad_() for m in op_weights(out, enc)]
    gm = to_fx_hyper(s.ir, shared, enc).train()
    x = oracle_input(s.ir, seed)
    y = gm(x, mats)
    target = torch.arange(2) % s.ir.classes
    torch.nn.functional.cross_entropy(y, target).backward()
    for k, m in enumerate(mats):
        assert m.grad is not None and m.grad.abs().sum() > 0, f"no gradient for matrix {k}"
    # the same through op_weights: only the positions some op occupies get a gradient
    y2 = gm(x, op_weights(out, enc))
    torch.nn.functional.cross_entropy(y2, target).backward()
    cfg = enc.config
    used = torch.zeros_like(out, dtype=torch.bool)
    n, sw = cfg.unit, cfg.slice_width
    for slot in enc.slots:
        # entry (o, i) of an op's matrix: channel (o % n) * sw + i % sw, row o // n,
        # slice first_slice + i // sw (docs/encoding.md)
        o = torch.arange(slot.bottleneck)[:, None]
        i = torch.arange(slot.in_channels)[None, :]
        used[0, (o % n) * sw + i % sw, o // n, slot.first_slice + i // sw] = True
    assert out.grad is not None
    assert (out.grad[used] != 0).float().mean() > 0.99
    assert (out.grad[~used] == 0).all()
    # shared weights: the stem, every transition, the head, and each block's used convs
    named = dict(shared.named_parameters())
    must = {"stem.weight", "head.weight", "head.bias", "head_bn.weight", "head_bn.bias"}
    must |= {f"transition_conv.{t}" for t in range(len(cfg.block_inputs) - 1)}
    must |= {f"transition_bn.{t}.weight" for t in range(len(cfg.block_inputs) - 1)}
    used_convs = set()
    for b, info in enumerate(s.ir.blocks):
        for n in s.ir.graph:
            p = s.ir.payload(n)
            if isinstance(p, OpNode) and p.stage == info.name and isinstance(p.op, arch.SmashOp):
                used_convs |= {f"convs.block{b}_c{i}" for i, c in enumerate(p.op.convs) if c}
    assert used_convs
    for name in must | used_convs:
        g = named[name].grad
        assert g is not None and g.abs().sum() > 0, f"no gradient for shared {name}"
    for name, p in named.items():
        if name.startswith("convs.") and name not in used_convs:
            assert p.grad is None or (p.grad == 0).all(), name


def test_sampled_hyper_pools_before_the_transition_conv():
    # the oracle tests show the rewrite keeps the function; this shows it happens (it is a
    # speed rewrite: the 1x1 conv then runs on a quarter of the pixels)
    s = sampled(0, 1.0, False)
    gm = to_fx_hyper(s.ir, _shared(False), encode(s.ir, s.config))
    convs = [n for n in gm.graph.nodes if n.target is torch.nn.functional.conv2d]
    assert len(convs) == len(s.ir.blocks) - 1  # one per transition
    for conv in convs:
        assert conv.args[0].target is torch.nn.functional.avg_pool2d
        assert all(u.target is not torch.nn.functional.avg_pool2d for u in conv.users)


@pytest.mark.parametrize("case", CASES[::25], ids=case_id)
def test_sampled_hyper_gradients_match_oracle(case):
    # the backend's rewrites (split bank writes, pool before conv, shared-weight crops)
    # must keep the gradients too, not only the outputs
    seed, _, variable, _ = case
    s = sampled(*case)
    shared = _shared(variable)
    enc = encode(s.ir, s.config)
    out = random_hypernet_output(enc, seed)
    gm = to_fx_hyper(s.ir, shared, enc).eval()
    grads = []
    for run in ("fx", "oracle"):
        x = oracle_input(s.ir, seed).requires_grad_()
        mats = [m.requires_grad_() for m in op_weights(out.clone(), enc)]
        if run == "fx":
            y = gm(x, mats)
        else:
            y = run_network(s.net, x, hyper_store(s.ir, shared, enc, mats))
        shared.zero_grad(set_to_none=True)
        y.square().sum().backward()
        convs = [p.grad for k, p in shared.named_parameters() if k.startswith("convs")]
        grads.append((x.grad, [m.grad for m in mats], convs))
    (gx1, gm1, gc1), (gx2, gm2, gc2) = grads
    torch.testing.assert_close(gx1, gx2)
    for a, b in zip(gm1 + gc1, gm2 + gc2, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)

"""Shared helpers for the backend tests (fx, hyper-fx, encoding, export, visualize).

* ``sampled``: seeded SMASH-space architectures at a tiny input (3 blocks at 8/4/2 px), as
  the sampler's ``arch.Network`` (the oracle's input), compiled IR and .smash text;
  ``CASES``: the 200 (seed, progress, variable_ops, budget scale) draws the tests use;
* ``TINY`` / ``CORNERS``: a small hand-written SMASH-space net and a plain net full of
  memory-bank corner cases; cached compiles of the examples (per file version);
* ``oracle_store`` / ``load_store_into_fx``: oracle weights and copying them into a
  free-weights fx GraphModule;
* ``hyper_store``: a ``WeightStore`` filled from a ``SharedWeights`` bank and generated 1x1
  matrices, so that the hyper-mode module can be checked against the memory-bank oracle.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import fx
from torch.fx.passes.shape_prop import ShapeProp

from smashc import arch
from smashc.backends.encoding import Encoding, EncodingConfig
from smashc.backends.fx import py_name, to_fx
from smashc.backends.hyperfx import SharedWeights
from smashc.backends.interpreter import WeightStore, run_network
from smashc.compiler import to_text
from smashc.frontend.expand import expand
from smashc.frontend.loader import load_file
from smashc.ir import lower
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import Add, BankVersion, Concat, OpNode, Slice
from smashc.passes import run_pipeline
from smashc.pipeline import compile_file, compile_text
from smashc.runtime.sampler import Sampler, SearchSpace


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny float64 convs: OpenMP threads only add contention (up to 100x slower on a busy
    machine). Import this fixture into a test module to run it single-threaded."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

SMALL_INPUT = (3, 8, 8)
SMALL_CLASSES = 10


def space(variable_ops: bool, budget_scale: float = 1.0) -> SearchSpace:
    """The reference search space at a tiny input (8x8 -> 4x4 -> 2x2 blocks), 10 classes;
    ``budget_scale`` < 1 shrinks the per-block op budgets (fewer layers per block)."""
    budgets = tuple(int(b * budget_scale) for b in SearchSpace().budgets)
    return SearchSpace(
        input=SMALL_INPUT, classes=SMALL_CLASSES, variable_ops=variable_ops, budgets=budgets
    )


@dataclass(frozen=True)
class Sampled:
    """One sampled architecture and its compiled IR."""

    net: arch.Network  # the oracle's input
    ir: IRGraph  # lower + default pipeline (what compile_text does after the front end)
    space: SearchSpace
    progress: float
    seed: int

    @property
    def config(self) -> EncodingConfig:
        return self.space.encoding()

    def text(self) -> str:
        """The same architecture as .smash source (``Sampler.sample``)."""
        sampler = Sampler(self.space, self.seed)
        return to_text(sampler.sample(self.progress, name=self.net.name))


@functools.cache
def sampled(seed: int, progress: float, variable_ops: bool, budget_scale: float = 1.0) -> Sampled:
    """A seeded SMASH-space net at the tiny input, compiled by the default pipeline.

    (Parsing its printed text gives the same network: test_fx checks that on a subset.)
    """
    sp = space(variable_ops, budget_scale)
    net = Sampler(sp, seed).sample(progress, name=f"s{seed}")
    return Sampled(net, run_pipeline(lower(net)).ir, sp, progress, seed)


# 200 (seed, progress, variable_ops, budget_scale) cases: 100 per op layout, progress through
# the annealing (max kernel 3, 5, 5, 7, 7), half at the reference budgets, half at 30% of them.
PROGRESS = (0.0, 0.2, 0.35, 0.6, 1.0)
CASES = [
    (seed, PROGRESS[seed % len(PROGRESS)], variable, 1.0 if seed % 2 == 0 else 0.3)
    for variable in (False, True)
    for seed in range(100)
]


def case_id(case: tuple) -> str:
    seed, progress, variable, scale = case
    return f"{'var' if variable else 'c0'}-s{seed}-p{progress}-b{scale}"


# --- a tiny hand-written SMASH-space net ------------------------------------------------------

TINY = """\
network t {
    input 3 x 8 x 8
    classes 10
    STEM
    block block0 {
        banks 4 x 32
        LAYER0
        layer b0_l1 read 0, 2 write 3 = smash(out=32, bottleneck=64, c0=conv(kernel=5))
    }
    transition { bn -> relu -> conv(out=96, kernel=1) -> avgpool(kernel=2) }
    block block1 {
        banks 4 x 32
        layer b1_l0 read 0..3 write 1, 3 = smash(out=32, bottleneck=128, c0=conv(kernel=3))
    }
    transition { bn -> relu -> conv(out=112, kernel=1) -> avgpool(kernel=2) }
    block block2 {
        banks 3 x 56
        layer b2_l0 read 0, 1 write 2 = smash(out=56, bottleneck=128, c0=conv(kernel=7))
    }
    head { bn -> relu -> gap -> linear(out=10) }
}
"""
GOOD_STEM = "stem { conv(out=64, kernel=7) -> relu }"
GOOD_LAYER = "layer b0_l0 read 0 write 2 = smash(out=32, bottleneck=64, c0=conv(kernel=3))"


def tiny_text(stem: str = GOOD_STEM, layer: str = GOOD_LAYER) -> str:
    """TINY with its stem and first layer (source line 7) replaced."""
    return TINY.replace("STEM", stem).replace("LAYER0", layer)


@functools.cache
def tiny_ir() -> IRGraph:
    return compile_text(tiny_text())


# Memory-bank corner cases the examples and the sampler do not produce: unsorted reads, an
# output in non-bank order, overwrites (of data and of an empty bank), writes wrapping
# around the chunks, a dead layer, sums, every activation, plain-op arguments, grid convs
# with every act, a flattened value going through an activation and a linear without bias.
CORNERS = """\
network corners {
    input 3 x 12 x 10
    classes 5
    stem { conv(out=12, kernel=(3, 5), stride=1, padding=(1, 2), bias=true)
        -> bn(eps=0.001, momentum=0.3) -> leaky_relu(slope=0.2) }
    block mixed {
        banks 3 x 4, 2 x 8, 1 x 4
        layer unsorted read 2, 0 write 3 = smash(out=8, bottleneck=16,
            c0=conv(kernel=5, dilation=2, groups=2, act=leaky_relu),
            c1=conv(kernel=(1, 3), act=identity))
        layer grid read 3, 1, 0 write 4 = smash(out=8, c0=conv(kernel=3, act=relu6),
            c2=conv(kernel=(3, 1), groups=4), c3=conv(kernel=1, groups=8, act=identity))
        layer wrap read 4 write 0, 1, 2 = conv(out=8, kernel=1) -> relu6
        layer fresh read 1 overwrite 5 = conv(out=4, kernel=3, dilation=2, padding=2)
        layer over read 3, 4 overwrite 1 = sum { conv(out=4, kernel=1) | identity -> bn
            -> conv(out=4, groups=4) | maxpool(kernel=3, stride=1, padding=1) -> conv(out=4) }
        layer dead read 0 write 2 = relu -> conv(out=4)
        output 5, 1, 3, 4
    }
    transition { avgpool(kernel=2, stride=2) -> chanpad(out=32) -> conv(out=16, stride=2) }
    block small {
        banks 2 x 8, 1 x 16
        layer l0 read 1, 0 write 2 = relu -> conv(out=16, kernel=3, groups=2)
        output 2, 0
    }
    head { gap -> linear(out=7) -> relu -> identity -> linear(out=5, bias=false) }
}
"""


# --- examples -----------------------------------------------------------------------------


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.smash"))


def example_ir(path: Path, overrides: tuple[tuple[str, int], ...] = ()) -> IRGraph:
    """The example compiled by the default pipeline (``overrides``: ``-D NAME=N`` pairs).

    Cached per file version (the examples may change while a session runs)."""
    return _example_ir(path, path.stat().st_mtime_ns, overrides)


def example_net(path: Path) -> arch.Network:
    """The example's expanded architecture (the oracle's input), cached per file version."""
    return _example_net(path, path.stat().st_mtime_ns)


@functools.cache
def _example_ir(path: Path, mtime: int, overrides: tuple[tuple[str, int], ...]) -> IRGraph:
    return compile_file(path, dict(overrides) or None)


@functools.cache
def _example_net(path: Path, mtime: int) -> arch.Network:
    return expand(load_file(path))


def is_smash_space(ir: IRGraph) -> bool:
    """Whether every block layer is one smash op (the examples meant for the encoding)."""
    return any(isinstance(ir.payload(n), OpNode) for n in ir.graph) and all(
        isinstance(p.op, arch.SmashOp)
        for p in (ir.payload(n) for n in ir.graph)
        if isinstance(p, OpNode) and p.layer is not None
    )


def uses_variable_op(ir: IRGraph) -> bool:
    """Whether some smash op uses c1, c2 or c3 (needs the convs_per_op=4 layout)."""
    return any(
        isinstance(p, OpNode)
        and isinstance(p.op, arch.SmashOp)
        and any(c is not None for c in p.op.convs[1:])
        for p in (ir.payload(n) for n in ir.graph)
    )


def encoding_config(ir: IRGraph) -> EncodingConfig:
    return EncodingConfig(
        input=ir.input, classes=ir.classes, convs_per_op=4 if uses_variable_op(ir) else 1
    )


def source_block_names(path: Path) -> list[str]:
    """Names given to blocks in a .smash network (``block NAME {`` / ``block NAME =``)."""
    text = path.read_text(encoding="utf-8")
    return re.findall(r"^\s*block\s+([A-Za-z_]\w*)\s*[{=]", text, flags=re.M)


def source_layer_names(path: Path) -> list[str]:
    """Names given to layers in a .smash file (``layer NAME read ...``)."""
    text = path.read_text(encoding="utf-8")
    return re.findall(r"\blayer\s+([A-Za-z_]\w*)\s+read\b", text)


# --- weights ------------------------------------------------------------------------------


def op_nodes(ir: IRGraph) -> list[tuple[str, arch.Op, int]]:
    """(IR node id, op, input channels) of every OpNode, in topological order."""
    out = []
    for n in ir.nodes():
        p = ir.payload(n)
        if isinstance(p, OpNode):
            out.append((n, p.op, ir.shape(ir.operands(n)[0]).channels))
    return out


def _copy(param: torch.Tensor, value: torch.Tensor) -> None:
    assert param.shape == value.shape, (param.shape, value.shape)
    with torch.no_grad():
        param.copy_(value)


def oracle_store(ir: IRGraph, seed: int) -> WeightStore:
    """A float64 WeightStore for every op of ``ir``, drawn in float32 (5x faster) and widened.

    Keyed like ``WeightStore.get`` (IR node id = oracle op name), so ``run_network`` finds
    the same tensors that ``load_store_into_fx`` copies into a module.
    """
    draw = WeightStore(seed, dtype=torch.float32)
    store = WeightStore(seed, dtype=torch.float64)
    for node, op, cin in op_nodes(ir):
        store.tensors[node] = {k: v.double() for k, v in draw.get(node, op, cin).items()}
    return store


def load_store_into_fx(gm: fx.GraphModule, ir: IRGraph, store: WeightStore) -> None:
    """Copies the oracle's weights (``store.get(id, op, cin)``) into ``gm``'s submodules.

    A weight ``key`` of op ``id`` goes to attribute ``key`` of submodule ``py_name(id)``
    (conv, bn, linear: weight, bias, running statistics), else to the weight of submodule
    ``{py_name(id)}_{key}`` (smash: w1x1, c0..c3). Every weighted submodule of ``gm`` must
    receive a value, and a submodule's bias exactly when the oracle has one.
    """
    filled: set[str] = set()
    for node, op, cin in op_nodes(ir):
        w = store.get(node, op, cin)
        name = py_name(node)
        own = getattr(gm, name, None)
        if own is not None and "bias" in dict(own.named_parameters(recurse=False)):
            assert "bias" in w, f"{name} has a bias the oracle lacks"
        for key, value in w.items():
            if own is not None and hasattr(own, key):
                _copy(getattr(own, key), value)
                filled.add(name)
            else:
                _copy(gm.get_submodule(f"{name}_{key}").weight, value)
                filled.add(f"{name}_{key}")
    weighted = {n for n, m in gm.named_children() if any(True for _ in m.parameters())}
    assert weighted == filled, f"submodules without oracle weights: {sorted(weighted - filled)}"


def _named_ir_nodes(ir: IRGraph) -> list[str]:
    """IR nodes the free-weights backend must emit as an fx node of the same (py_)name."""
    out = []
    for n in ir.nodes():
        p = ir.payload(n)
        if isinstance(p, OpNode):
            if isinstance(p.op, arch.SmashOp):
                continue  # emitted as {name}_w1x1, {name}_c0, ... {name}_sum
            if isinstance(p.op, arch.Act) and p.op.kind == "identity":
                continue  # no node: the operand itself
            out.append(n)
        elif isinstance(p, Concat | Slice):
            out.append(n)
        elif isinstance(p, Add | BankVersion) and len(ir.operands(n)) != 1:
            out.append(n)
    return out


def check_fx_against_oracle(
    ir: IRGraph, net: arch.Network, seed: int, shapes: bool = True
) -> fx.GraphModule:
    """Free-weights module with the oracle's weights == oracle; with ``shapes``, ShapeProp
    shapes of the nodes named after IR nodes == the IR's inferred shapes."""
    gm = to_fx(ir).double().eval()
    gm.graph.lint()
    store = oracle_store(ir, seed)
    load_store_into_fx(gm, ir, store)
    x = oracle_input(ir, seed)
    with torch.no_grad():
        y = ShapeProp(gm).propagate(x) if shapes else gm(x)
        expected = run_network(net, x, store)
    assert y.shape == (2, ir.classes)
    assert torch.allclose(y, expected), (y - expected).abs().max()
    # the output depends on the input (a constant network would agree trivially)
    assert not torch.allclose(y[0], y[1])
    if shapes:
        nodes = {n.name: n for n in gm.graph.nodes}
        for n in _named_ir_nodes(ir):
            node = nodes.get(py_name(n))
            assert node is not None, f"no fx node named {py_name(n)} for IR node {n}"
            s = ir.shape(n)
            assert shape_of(node.meta["tensor_meta"]) == (s.channels, s.height, s.width), n
    return gm


def randomise_shared(shared: SharedWeights, seed: int = 0) -> SharedWeights:
    """Non-trivial BN statistics and affine parameters (defaults would hide slicing bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in [*shared.transition_bn, shared.head_bn]:
            n = bn.num_features
            dt = bn.weight.dtype
            bn.weight.copy_(1 + 0.1 * torch.randn(n, generator=g, dtype=dt))
            bn.bias.copy_(0.1 * torch.randn(n, generator=g, dtype=dt))
            bn.running_mean.copy_(0.1 * torch.randn(n, generator=g, dtype=dt))
            bn.running_var.copy_(1 + 0.1 * torch.rand(n, generator=g, dtype=dt))
        shared.head.bias.copy_(torch.randn(shared.head.bias.shape, generator=g, dtype=dt))
    return shared


def random_hypernet_output(enc: Encoding, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """A HyperNet output for ``enc``: (1, unit * slice_width, rows, S), Gaussian."""
    cfg = enc.config
    g = torch.Generator().manual_seed(seed)
    shape = (1, cfg.unit * cfg.slice_width, cfg.rows, enc.tensor.shape[3])
    return torch.randn(*shape, generator=g, dtype=dtype)


def _centre(kmax: int, k: int) -> slice:
    """The k x k centre of a kmax x kmax kernel (both odd)."""
    start = (kmax - k) // 2
    return slice(start, start + k)


def hyper_store(
    ir: IRGraph, shared: SharedWeights, enc: Encoding, mats: list[torch.Tensor]
) -> WeightStore:
    """A WeightStore holding exactly what the hyper module should use for every op.

    Written from the documented semantics, independently of hyperfx: the k-th generated
    matrix belongs to the op ``enc.slots[k].node`` and is weight-normalised (divided by
    its Frobenius norm); shared per-block convs are ``[:out, :in/groups]`` with the
    kernel centre-cropped from the largest allowed size; stem, transitions and head are
    sliced to the channels present.
    """
    cfg = shared.cfg
    kmax = max(cfg.kernel_sizes)
    assert len(mats) == len(enc.slots)
    generated = {slot.node: m for slot, m in zip(enc.slots, mats, strict=True)}
    blocks = [b.name for b in ir.blocks]
    transitions = [s.name for s in ir.stages if s.kind == "transition"]
    store = WeightStore()
    for node, op, cin in op_nodes(ir):
        p = ir.payload(node)
        kind = ir.stage(p.stage).kind
        match op:
            case arch.SmashOp():
                m = generated[node]
                assert m.shape == (op.bottleneck, cin)
                d = {"w1x1": (m / m.norm()).reshape(op.bottleneck, cin, 1, 1)}
                b = blocks.index(p.stage)
                for pos, c in enumerate(op.convs):
                    if c is None:
                        continue
                    bank = shared.convs[f"block{b}_c{pos}"]
                    d[f"c{pos}"] = bank[
                        : op.out,
                        : op.conv_in(pos) // c.groups,
                        _centre(kmax, c.kernel[0]),
                        _centre(kmax, c.kernel[1]),
                    ]
                store.tensors[node] = d
            case arch.Conv() if kind == "stem":
                store.tensors[node] = {"weight": shared.stem.weight}
            case arch.Conv():
                t = transitions.index(p.stage)
                store.tensors[node] = {"weight": shared.transition_conv[t][:, :cin]}
            case arch.BatchNorm():
                bn = (
                    shared.head_bn
                    if kind == "head"
                    else shared.transition_bn[transitions.index(p.stage)]
                )
                store.tensors[node] = {
                    k: getattr(bn, k)[:cin]
                    for k in ("weight", "bias", "running_mean", "running_var")
                }
            case arch.Linear():
                store.tensors[node] = {
                    "weight": shared.head.weight[:, :cin],
                    "bias": shared.head.bias,
                }
    return store


def oracle_input(ir: IRGraph, seed: int = 0) -> torch.Tensor:
    """Two seeded float64 images of ``ir``'s input shape, for comparisons with the oracle."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, *ir.input, generator=g, dtype=torch.float64)


def shape_of(t) -> tuple[int, int, int]:
    """IR-style (C, H, W) of a batched value (tensor or ShapeProp TensorMetadata);
    a flat (N, C) value is C x 1 x 1."""
    shape = tuple(t.shape)
    if len(shape) == 2:
        return (shape[1], 1, 1)
    assert len(shape) == 4, shape
    return shape[1:]  # type: ignore[return-value]

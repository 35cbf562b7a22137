"""torch.fx backend (free weights): an fx.Graph built directly from the IR, no tracing.

Every op owns ordinary parameters (``nn.Conv2d``, ``nn.BatchNorm2d``, ``nn.Linear``); weight-free
ops are plain function calls. Each op is emitted by its registry entry's ``fx`` function,
through the ``Emitter`` methods of the builder. Node and module names are the IR node ids
with ``.`` turned into ``_``, so ``gm.code`` reads like the .smash source (``stage1_l0_0conv``).
"""

from __future__ import annotations

import functools
import operator
import re

import torch
import torch.nn.functional as F  # noqa: N812
from torch import fx, nn

from smashc import arch
from smashc.backends.budget import DEFAULT_MAX_PARAMS, check_fits
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import Add, BankVersion, Concat, Input, OpNode, Output, Slice
from smashc.ops.registry import of


@functools.lru_cache(maxsize=1 << 16)  # sampled networks reuse the same few hundred ids
def py_name(node_id: str) -> str:
    """A Python identifier for an IR node id (``stage1_l0.0conv`` -> ``stage1_l0_0conv``)."""
    name = re.sub(r"\W", "_", node_id)
    # a leading digit is not an identifier; a leading "__" would be name-mangled in the
    # exported class body (``self.__init___l0`` reads ``self._Net__init___l0``)
    return name if not (name[0].isdigit() or name.startswith("__")) else f"n_{name}"


def node(graph: fx.Graph, op: str, target, args, name: str) -> fx.Node:
    """``graph.create_node(op, target, tuple(args), {}, name=name)``, with the arguments set
    on the new node instead: ``create_node`` walks them with pytree looking for symbolic
    ints, which these backends never emit, at 8 us a node, a third of building the graph
    that the training loop builds for every sampled architecture (``bench/compile.py``)."""
    n = graph.create_node(op, target, (), {}, name=name)
    if args:
        n.args = tuple(args)
    return n


def emit_act(graph: fx.Graph, kind: str, slope: float, x: fx.Node, name: str) -> fx.Node:
    """An activation node (none for identity), shared by both fx backends."""
    if kind == "identity":
        return x
    fn, args = {"relu": (F.relu, (x,)), "relu6": (F.relu6, (x,))}.get(
        kind, (F.leaky_relu, (x, slope))
    )
    return node(graph, "call_function", fn, args, name)


def emit_grid(graph: fx.Graph, op: arch.SmashOp, b: fx.Node, name: str, conv) -> fx.Node:
    """A SMASH op's conv grid after its bottleneck ``b``: each chain's activations and
    ``conv(pos, smash_conv, x)`` nodes, chains summed. Shared by both fx backends."""
    total = None
    for chain in op.paths():
        y = b
        for pos, c in chain:
            if not (c.act == "relu" and pos in (0, 2)):  # the bottleneck is already ReLU'd
                y = emit_act(graph, c.act, 0.01, y, f"{name}_c{pos}_{c.act}")
            y = conv(pos, c, y)
        if total is not None:
            y = node(graph, "call_function", operator.add, (total, y), f"{name}_sum")
        total = y
    assert total is not None, "a smash op has at least c0"
    return total


def class_name(net: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]", net) if part) or "Net"


class _Builder:
    def __init__(self, ir: IRGraph):
        self.ir = ir
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.flat: set[fx.Node] = set()  # (N, C) values: only a linear feeding the output
        self.feeds_output = False  # whether the op being emitted is the network output
        self.x: fx.Node | None = None
        self.names: set[str] = {"x"}

    def node(self, op: str, target, args, name: str) -> fx.Node:
        return node(self.graph, op, target, args, name)

    def unique(self, name: str) -> str:
        """``name``, suffixed if another IR id already mapped to it (``a.0conv`` vs ``a_0conv``)."""
        out, k = name, 2
        while out in self.names:
            out, k = f"{name}_{k}", k + 1
        self.names.add(out)
        return out

    # --- the Emitter interface that registry entries lower through (smashc.ops.registry)
    def module(self, name: str, mod: nn.Module, x: fx.Node) -> fx.Node:
        name = self.unique(name)
        self.root.add_module(name, mod)
        return self.node("call_module", name, [x], name)

    def call(self, fn, args: list, name: str) -> fx.Node:
        return self.node("call_function", fn, args, name)

    def method(self, method: str, args: list, name: str) -> fx.Node:
        return self.node("call_method", method, args, name)

    def act(self, kind: str, slope: float, x: fx.Node, name: str) -> fx.Node:
        return emit_act(self.graph, kind, slope, x, name)

    def grid(self, op: arch.SmashOp, b: fx.Node, name: str, conv) -> fx.Node:
        return emit_grid(self.graph, op, b, name, conv)

    def keep_flat(self, y: fx.Node) -> None:
        self.flat.add(y)

    def build(self) -> fx.GraphModule:
        ir = self.ir
        env: dict[str, fx.Node] = {}
        for n in ir.nodes():
            p = ir.payload(n)
            ins = [env[o] for o in ir.operands(n)]
            name = py_name(n)
            match p:
                case Input():
                    v = self.x = self.node("placeholder", "x", [], "x")
                case Output():
                    x = ins[0]
                    if x not in self.flat:
                        x = self.node("call_function", torch.flatten, [x, 1], "logits")
                    self.graph.output(x)
                    continue
                case OpNode():
                    cin = ir.shape(ir.operands(n)[0]).channels
                    self.feeds_output = any(isinstance(ir.payload(u), Output) for u in ir.users(n))
                    v = of(p.op).fx(self, p.op, ins[0], cin, name)
                case Concat():
                    v = self.node("call_function", torch.cat, [list(ins), 1], name)
                case Add() | BankVersion() if len(ins) >= 2:
                    v = ins[0]
                    for k, other in enumerate(ins[1:]):
                        last = k == len(ins) - 2
                        v = self.node(
                            "call_function",
                            operator.add,
                            [v, other],
                            name if last else f"{name}_{k}",
                        )
                case Add() | BankVersion() if len(ins) == 1:
                    v = ins[0]
                case BankVersion():
                    s = ir.shape(n)
                    size = self.node("call_method", "size", [self.x, 0], f"{name}_n")
                    shape = (size, s.channels, s.height, s.width)
                    v = self.node("call_method", "new_zeros", [self.x, shape], name)
                case Slice():
                    index = (slice(None), slice(p.start, p.stop))
                    v = self.node("call_function", operator.getitem, [ins[0], index], name)
            env[n] = v
        self.graph.lint()
        return fx.GraphModule(self.root, self.graph, class_name=class_name(ir.name))


def to_fx(ir: IRGraph, max_params: int = DEFAULT_MAX_PARAMS) -> fx.GraphModule:
    """A GraphModule computing ``ir`` with its own freshly initialised parameters.

    Pre: shapes inferred. The module maps (N, C, H, W) inputs to (N, classes) logits.
    Raises SmashError (E0406, E0407), before allocating anything, when the weights would
    be more than ``max_params`` or more than the memory available.
    """
    if ir.shapes is None:
        raise ValueError("to_fx needs inferred shapes; run the default pipeline first")
    check_fits(ir, max_params)
    return _Builder(ir).build()

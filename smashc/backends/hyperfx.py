"""torch.fx backend, HyperNet weights: SMASH-space networks run on one shared weight bank.

The generated module's ``forward(x, w)`` takes the HyperNet's 1x1 weights ``w`` (one
(bottleneck, in) matrix per SMASH op, in encoding order; ``encoding.op_weights`` cuts them
from the HyperNet output). Each is weight-normalised (divided by its Frobenius norm). All
other weights are slices of a ``SharedWeights`` bank allocated at the space's maximum
sizes: per block one conv per grid position (largest kernel stored, smaller kernels are
centre crops, ``[:out, :in/groups]``), and stem, transition BN/conv and head BN/linear
sliced to the channels present.

A transition's 1x1 conv and the average pool after it commute (both are linear and the conv
acts on each pixel alone), so the pool runs first and the conv sees a quarter of the
pixels: same function, and training steps 7-9% faster (``bench/archive/ab.py``).
"""

from __future__ import annotations

import itertools
import operator

import torch
import torch.nn.functional as F  # noqa: N812
from torch import fx, nn

from smashc import arch
from smashc.backends import kernels
from smashc.backends.encoding import Encoding, EncodingConfig, encode
from smashc.backends.fx import class_name, emit_act, emit_grid, node, py_name
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import Add, BankVersion, Concat, Input, OpNode, Output, Slice


class SharedWeights(nn.Module):
    """The freely learned weights shared by every architecture of one search space."""

    def __init__(self, cfg: EncodingConfig):
        super().__init__()
        self.cfg = cfg
        kmax = max(cfg.kernel_sizes)
        width = cfg.max_banks * cfg.max_units
        self.stem = nn.Conv2d(
            cfg.input[0], cfg.stem_width, cfg.stem_kernel, padding=cfg.stem_kernel // 2, bias=False
        )
        self.convs = nn.ParameterDict()
        for b in range(len(cfg.block_inputs)):
            for p in range(4 if cfg.convs_per_op == 4 else 1):
                w = torch.empty(cfg.max_units, cfg.max_bottleneck * cfg.max_units, kmax, kmax)
                nn.init.kaiming_normal_(w, nonlinearity="relu")
                self.convs[f"block{b}_c{p}"] = nn.Parameter(w)
        self.transition_bn = nn.ModuleList(nn.BatchNorm2d(width) for _ in cfg.block_inputs[1:])
        self.transition_conv = nn.ParameterList(
            nn.Parameter(nn.init.kaiming_normal_(torch.empty(c, width, 1, 1)))
            for c in cfg.block_inputs[1:]
        )
        self.head_bn = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, cfg.classes)


def centre(kmax: int, k: int) -> slice:
    start = (kmax - k) // 2
    return slice(start, start + k)


class _HyperBuilder:
    def __init__(self, ir: IRGraph, shared: SharedWeights):
        self.ir = ir
        self.shared = shared
        self.cfg = shared.cfg
        self.root = nn.Module()
        self.root.shared = shared
        self.graph = fx.Graph()
        self.attrs: dict[str, fx.Node] = {}

    def call(self, fn, args, name: str) -> fx.Node:
        return node(self.graph, "call_function", fn, args, name)

    def attr(self, target: str, name: str) -> fx.Node:
        """One get_attr node per target, named at its first use (fewer nodes, faster codegen)."""
        if target not in self.attrs:
            self.attrs[target] = self.graph.create_node("get_attr", target, (), {}, name=name)
        return self.attrs[target]

    def sliced(self, target: str, index: tuple, name: str) -> fx.Node:
        return self.call(operator.getitem, [self.attr(target, f"{name}_bank"), index], name)

    def act(self, kind: str, slope: float, x: fx.Node, name: str) -> fx.Node:
        return emit_act(self.graph, kind, slope, x, name)

    def bn(self, prefix: str, x: fx.Node, c: int, name: str, eps: float, momentum: float):
        parts = [
            self.sliced(f"{prefix}.{field}", (slice(0, c),), f"{name}_{field}")
            for field in ("running_mean", "running_var", "weight", "bias")
        ]
        training = self.attr("training", f"{name}_training")
        # an attribute, not a constant, so that scoring can recalibrate BN statistics
        # with a running mean (runtime.scoring.recalibrate_bn)
        if getattr(self.root, "bn_momentum", momentum) != momentum:
            raise TypeError("the SMASH backend needs one BN momentum per network")
        self.root.bn_momentum = momentum
        momentum = self.attr("bn_momentum", f"{name}_momentum")
        return self.call(F.batch_norm, [x, *parts, training, momentum, eps], name)

    def smash(self, op: arch.SmashOp, x: fx.Node, w: fx.Node, block: int, name: str):
        cin = self.ir.shape(self.current_operand).channels
        b = self.call(kernels.bottleneck, [x, w, self.slot, cin], f"{name}_bottleneck")
        self.slot += 1

        def conv(pos: int, c: arch.SmashConv, y: fx.Node) -> fx.Node:
            weights, k = self.crops[(self.current_node, pos)]
            args = [y, weights, k, c.dilation, c.groups]
            return self.call(kernels.shared_conv, args, f"{name}_c{pos}")

        return emit_grid(self.graph, op, b, name, conv)

    def emit_crops(self) -> None:
        """Per shared conv bank, one ``kernels.crops`` node with the weight of every conv
        that uses it; ``self.crops`` maps (op node, grid position) to (that node, index)."""
        kmax = max(self.cfg.kernel_sizes)
        blocks = [s.name for s in self.ir.blocks]
        boxes: dict[str, list[kernels.Box]] = {}
        index: dict[tuple[str, int], tuple[str, int]] = {}
        for n in self.ir.nodes():
            p = self.ir.payload(n)
            if not (isinstance(p, OpNode) and isinstance(p.op, arch.SmashOp)):
                continue
            for chain in p.op.paths():
                for pos, c in chain:
                    bank = f"shared.convs.block{blocks.index(p.stage)}_c{pos}"
                    rows, cols = centre(kmax, c.kernel[0]), centre(kmax, c.kernel[1])
                    box = (p.op.out, p.op.conv_in(pos) // c.groups, (rows.start, rows.stop),
                           (cols.start, cols.stop))  # fmt: skip
                    index[(n, pos)] = (bank, len(boxes.setdefault(bank, [])))
                    boxes[bank].append(box)
        nodes = {}
        for bank, bs in boxes.items():
            name = bank.removeprefix("shared.convs.") + "_crops"
            bank_node = self.attr(bank, f"{name}_bank")
            nodes[bank] = self.call(kernels.crops, [bank_node, tuple(bs)], name)
        self.crops = {key: (nodes[bank], k) for key, (bank, k) in index.items()}

    def op(self, p: OpNode, x: fx.Node, w: fx.Node, name: str) -> fx.Node:
        op, c = p.op, self.ir.shape(self.current_operand).channels
        kind = self.ir.stage(p.stage).kind
        match op:
            case arch.SmashOp():
                block = [s.name for s in self.ir.blocks].index(p.stage)
                return self.smash(op, x, w, block, name)
            case arch.Conv() if kind == "stem":
                w_stem = self.attr("shared.stem.weight", f"{name}_w")
                return self.call(kernels.conv2d, [x, w_stem, op.padding, (1, 1), 1], name)
            case arch.Conv() if kind == "transition":
                t = self.transition_index(p.stage)
                weight = self.sliced(
                    f"shared.transition_conv.{t}", (slice(None), slice(0, c)), f"{name}_w"
                )
                pool = self.pool_after(self.current_node)
                if pool is not None:
                    x = self.op(self.ir.payload(pool), x, w, f"{name}_pooled")
                    self.pooled.add(pool)
                return self.call(F.conv2d, [x, weight], name)
            case arch.BatchNorm():
                prefix = (
                    "shared.head_bn"
                    if kind == "head"
                    else (f"shared.transition_bn.{self.transition_index(p.stage)}")
                )
                return self.bn(prefix, x, c, name, op.eps, op.momentum)
            case arch.Linear():
                flat = self.call(torch.flatten, [x, 1], f"{name}_flat")
                weight = self.sliced("shared.head.weight", (slice(None), slice(0, c)), f"{name}_w")
                bias = self.attr("shared.head.bias", f"{name}_b")
                return self.call(F.linear, [flat, weight, bias], name)
            case arch.Act():
                return self.act(op.kind, op.slope, x, name)
            case arch.Pool(kind="avg"):
                return self.call(F.avg_pool2d, [x, op.kernel, op.stride, op.padding], name)
            case arch.GlobalAvgPool():
                return self.call(F.adaptive_avg_pool2d, [x, 1], name)
        raise TypeError(f"{op!r} is outside the SMASH space (encode() reports why)")

    def pool_after(self, conv: str) -> str | None:
        """The average pool that is the 1x1 conv ``conv``'s only user, if it is one."""
        users = self.ir.users(conv)
        if len(users) != 1:
            return None
        p = self.ir.payload(users[0])
        ok = isinstance(p, OpNode) and isinstance(p.op, arch.Pool) and p.op.kind == "avg"
        return users[0] if ok and p.op.padding == (0, 0) else None

    def slice(self, src: str, x: fx.Node, p: Slice, name: str) -> fx.Node:
        """Channels [start, stop) of ``x``: a piece of one ``torch.split`` of ``x`` when ``x``
        has several slices that do not overlap (an op writing into several banks), else a
        plain slice. A split has one backward that concatenates the pieces' gradients; each
        slice's backward allocates a zero tensor the size of ``x`` and adds it to the others
        (steps 6-8% faster than slices: ``bench/archive/ab.py``)."""
        if src not in self.splits:
            self.splits[src] = self.split_of(src, x, name)
        split, pieces = self.splits[src]
        k = pieces.get((p.start, p.stop))
        if k is None:
            return self.call(operator.getitem, [x, (slice(None), slice(p.start, p.stop))], name)
        return self.call(operator.getitem, [split, k], name)

    def split_of(self, src: str, x: fx.Node, name: str) -> tuple[fx.Node | None, dict]:
        ranges = {
            (q.start, q.stop)
            for u in self.ir.users(src)
            if isinstance(q := self.ir.payload(u), Slice)
        }
        cuts = sorted({0, self.ir.shape(src).channels, *(c for r in ranges for c in r)})
        pieces = {
            (a, b): k for k, (a, b) in enumerate(itertools.pairwise(cuts)) if (a, b) in ranges
        }
        if len(pieces) < 2:
            return None, {}
        sizes = [b - a for a, b in itertools.pairwise(cuts)]
        return self.call(torch.split, [x, sizes, 1], f"{name}_split"), pieces

    def transition_index(self, stage: str) -> int:
        names = [s.name for s in self.ir.stages if s.kind == "transition"]
        return names.index(stage)

    def build(self) -> fx.Graph:
        ir = self.ir
        env: dict[str, fx.Node] = {}
        x_in = self.graph.create_node("placeholder", "x", (), {}, name="x")
        w = self.graph.create_node("placeholder", "w", (), {}, name="w")
        self.slot = 0
        self.emit_crops()
        self.splits: dict[str, tuple[fx.Node | None, dict]] = {}
        self.pooled: set[str] = set()  # pools already applied before their transition conv
        for n in ir.nodes():
            p = ir.payload(n)
            ins = [env[o] for o in ir.operands(n)]
            name = py_name(n)
            match p:
                case Input():
                    v = x_in
                case Output():
                    self.graph.output(ins[0])  # the head's linear already gives (N, classes)
                    continue
                case OpNode() if n in self.pooled:
                    v = ins[0]
                case OpNode():
                    self.current_node, self.current_operand = n, ir.operands(n)[0]
                    v = self.op(p, ins[0], w, name)
                case Concat():
                    v = self.call(torch.cat, [list(ins), 1], name)
                case Add() | BankVersion() if len(ins) >= 2:
                    v = ins[0]
                    for k, other in enumerate(ins[1:]):
                        last = k == len(ins) - 2
                        v = self.call(operator.add, [v, other], name if last else f"{name}_{k}")
                case Add() | BankVersion() if len(ins) == 1:
                    v = ins[0]
                case Slice():
                    v = self.slice(ir.operands(n)[0], ins[0], p, name)
                case _:
                    raise TypeError(f"{p!r} cannot appear in a SMASH-space network")
            env[n] = v
        return self.graph


def hyper_graph(
    ir: IRGraph, shared: SharedWeights, enc: Encoding | None = None
) -> tuple[nn.Module, fx.Graph]:
    """The graph of ``forward(x, w)`` of a SMASH-space network on ``shared`` weights and
    generated ``w``, and the module its ``get_attr`` nodes read.

    Pre: shapes inferred; ``ir`` encodable with ``shared.cfg``. Pass its ``enc`` if already
    computed; otherwise it is encoded here, which raises a located SmashError for anything
    outside the space.
    """
    if enc is None:
        encode(ir, shared.cfg)
    builder = _HyperBuilder(ir, shared)
    return builder.root, builder.build()


def to_fx_hyper(ir: IRGraph, shared: SharedWeights, enc: Encoding | None = None) -> fx.GraphModule:
    """``hyper_graph`` as a GraphModule: Python code to read, export or trace further. (The
    training loop runs the graph with ``fxrun.GraphRunner`` instead: see there.)"""
    root, graph = hyper_graph(ir, shared, enc)
    return fx.GraphModule(root, graph, class_name=class_name(ir.name) + "Hyper")

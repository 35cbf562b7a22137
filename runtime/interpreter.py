"""Reference executors, deliberately simple: the memory-bank semantics run eagerly (the oracle),
and a node-by-node evaluator of the IR. Both take weights from one WeightStore by op name.

The oracle reads the expanded architecture (``arch.Network``) directly: banks are tensors,
layers run in order, reads concatenate, writes add (or overwrite) bank-width chunks. It shares
no code with lowering or code generation, so agreement with them is evidence, not tautology.
"""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F  # noqa: N812

from smashc import arch
from smashc.ir.graph import IRGraph
from smashc.ir.nodes import Add, BankVersion, Concat, Input, OpNode, Output, Slice


class WeightStore:
    """Weights by op name, drawn on first use from a generator seeded by (seed, name).

    The same name and input width give the same tensors in every executor, whatever order
    the ops run in. ``tensors`` may be pre-filled to supply weights explicitly.
    """

    def __init__(self, seed: int = 0, dtype: torch.dtype = torch.float64):
        self.seed = seed
        self.dtype = dtype
        self.tensors: dict[str, dict[str, torch.Tensor]] = {}

    def _rand(self, name: str, *shape: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + zlib.crc32(name.encode())) % 2**63
        )
        return torch.randn(*shape, generator=g, dtype=self.dtype)

    def get(self, name: str, op: arch.Op, cin: int) -> dict[str, torch.Tensor]:
        if name in self.tensors:
            return self.tensors[name]
        r = lambda part, *shape: self._rand(f"{name}/{part}", *shape)  # noqa: E731
        w: dict[str, torch.Tensor] = {}
        match op:
            case arch.Conv():
                kh, kw = op.kernel
                fan = cin // op.groups * kh * kw
                w["weight"] = r("weight", op.out, cin // op.groups, kh, kw) / fan**0.5
                if op.bias:
                    w["bias"] = r("bias", op.out)
            case arch.BatchNorm():
                w["weight"] = 1 + 0.1 * r("weight", cin)
                w["bias"] = 0.1 * r("bias", cin)
                w["running_mean"] = 0.1 * r("mean", cin)
                w["running_var"] = 1 + 0.1 * r("var", cin).abs()
            case arch.Linear():
                w["weight"] = r("weight", op.out, cin) / cin**0.5
                if op.bias:
                    w["bias"] = r("bias", op.out)
            case arch.SmashOp():
                w["w1x1"] = r("w1x1", op.bottleneck, cin, 1, 1) / cin**0.5
                for pos, c in enumerate(op.convs):
                    if c is not None:
                        cpos = op.conv_in(pos)
                        fan = cpos // c.groups * c.kernel[0] * c.kernel[1]
                        shape = (op.out, cpos // c.groups, *c.kernel)
                        w[f"c{pos}"] = r(f"c{pos}", *shape) / fan**0.5
        self.tensors[name] = w
        return w


def activation(kind: str, slope: float, x: torch.Tensor) -> torch.Tensor:
    if kind == "relu":
        return F.relu(x)
    if kind == "relu6":
        return F.relu6(x)
    if kind == "leaky_relu":
        return F.leaky_relu(x, slope)
    return x


def apply_op(op: arch.Op, x: torch.Tensor, w: dict[str, torch.Tensor]) -> torch.Tensor:
    """One non-Sum op on a batch ``x`` (N, C, H, W). BatchNorm uses its running statistics."""
    match op:
        case arch.Conv():
            return F.conv2d(
                x, w["weight"], w.get("bias"), op.stride, op.padding, op.dilation, op.groups
            )
        case arch.BatchNorm():
            return F.batch_norm(
                x, w["running_mean"], w["running_var"], w["weight"], w["bias"], False, 0.0, op.eps
            )
        case arch.Act():
            return activation(op.kind, op.slope, x)
        case arch.Pool(kind="avg"):
            return F.avg_pool2d(x, op.kernel, op.stride, op.padding)
        case arch.Pool():
            return F.max_pool2d(x, op.kernel, op.stride, op.padding)
        case arch.GlobalAvgPool():
            return x.mean(dim=(2, 3), keepdim=True)
        case arch.Linear():
            y = F.linear(x.flatten(1), w["weight"], w.get("bias"))
            return y[:, :, None, None]
        case arch.ChannelPad():
            return F.pad(x, (0, 0, 0, 0, 0, op.out - x.shape[1]))
        case arch.SmashOp():
            b = F.relu(F.conv2d(x, w["w1x1"]))
            total = None
            for chain in op.paths():
                y = b
                for pos, c in chain:
                    pad = arch.same_padding(c.kernel, c.dilation)
                    y = activation(c.act, 0.01, y)
                    y = F.conv2d(y, w[f"c{pos}"], None, 1, pad, c.dilation, c.groups)
                total = y if total is None else total + y
            return total
    raise TypeError(f"apply_op cannot run {op!r}")


def run_ops(ops, x: torch.Tensor, prefix: str, store: WeightStore) -> torch.Tensor:
    for i, op in enumerate(ops):
        name = arch.op_name(prefix, i, op)
        if isinstance(op, arch.Sum):
            outs = [run_ops(p, x, f"{prefix}.{i}sum.p{j}", store) for j, p in enumerate(op.paths)]
            x = sum(outs[1:], outs[0])
        else:
            x = apply_op(op, x, store.get(name, op, x.shape[1]))
    return x


def run_block(block: arch.Block, x: torch.Tensor, store: WeightStore) -> torch.Tensor:
    n, _, h, w = x.shape
    banks: list[torch.Tensor] = []
    offset = 0
    for width in block.banks:
        part = x[:, offset : offset + width]
        if part.shape[1] < width:  # banks past the input start empty
            part = x.new_zeros(n, width, h, w)
        banks.append(part)
        offset += width
    for layer in block.layers:
        inp = torch.cat([banks[r] for r in layer.reads], dim=1)
        y = run_ops(layer.ops, inp, layer.name, store)
        width = block.banks[layer.writes[0]]
        chunks = torch.split(y, width, dim=1)
        for j, b in enumerate(layer.writes):
            chunk = chunks[j % len(chunks)]
            banks[b] = banks[b] + chunk if layer.mode == "write" else chunk
    return torch.cat([banks[o] for o in block.output], dim=1)


def run_network(net: arch.Network, x: torch.Tensor, store: WeightStore) -> torch.Tensor:
    """Logits (N, classes) of the memory-bank program on input ``x``."""
    for st in net.stages:
        if isinstance(st, arch.Block):
            x = run_block(st, x, store)
        else:
            x = run_ops(st.ops, x, st.name, store)
    return x.flatten(1)


def run_ir(ir: IRGraph, x: torch.Tensor, store: WeightStore) -> torch.Tensor:
    """Logits of an IRGraph evaluated node by node (needs inferred shapes for empty banks)."""
    values: dict[str, torch.Tensor] = {}
    for node in ir.nodes():
        p = ir.payload(node)
        ins = [values[o] for o in ir.operands(node)]
        match p:
            case Input():
                v = x
            case Output():
                v = ins[0].flatten(1)
            case OpNode():
                v = apply_op(p.op, ins[0], store.get(node, p.op, ins[0].shape[1]))
            case Concat():
                v = torch.cat(ins, dim=1)
            case Add():
                v = sum(ins[1:], ins[0])
            case Slice():
                v = ins[0][:, p.start : p.stop]
            case BankVersion():
                if ins:
                    v = sum(ins[1:], ins[0])
                else:
                    s = ir.shape(node)
                    v = x.new_zeros(x.shape[0], s.channels, s.height, s.width)
        values[node] = v
    out = next(n for n in ir.graph if isinstance(ir.payload(n), Output))
    return values[out]
